/**
 * Where a connection may go: `--map` rewrites a destination, then `--allow` / `--deny` CIDR lists
 * decide. Deny wins over allow; an empty allow list allows everything not denied.
 *
 * Matching is on the address's numbers, as the stack parsed them from the SYN: every address and
 * network is held as 128 bits, IPv4 as its IPv4-mapped IPv6 form (::ffff:a.b.c.d, RFC 4291
 * §2.5.5.2), so an IPv4 rule also matches the mapped form of its addresses and the reverse, as
 * Node's net.BlockList does. (Not net.BlockList: it builds a SocketAddress and runs an IPv6 regular
 * expression per check, ~5 µs of every SYN.)
 */
import net from 'node:net';
import os from 'node:os';
import { ConfigError } from '../errors.js';
import { parseAddress } from '../wire/address.js';

/** A set of networks, each as 4 words (IPv4 mapped into IPv6) and a prefix length 0..128. */
export class CidrSet {
  private readonly words: number[] = [];
  private readonly prefixes: number[] = [];

  get size(): number {
    return this.prefixes.length;
  }

  add(family: 4 | 6, words: Uint32Array, prefix: number): void {
    if (family === 4) this.words.push(0, 0, 0xffff, words[3] as number);
    else this.words.push(words[0] as number, words[1] as number, words[2] as number, words[3] as number);
    this.prefixes.push(family === 4 ? 96 + prefix : prefix);
  }

  /** Whether the address (IPv4 in word 3 when family is 4) lies in one of the networks. */
  has(family: 4 | 6, addr: Uint32Array): boolean {
    const w0 = family === 4 ? 0 : (addr[0] as number);
    const w1 = family === 4 ? 0 : (addr[1] as number);
    const w2 = family === 4 ? 0xffff : (addr[2] as number);
    const w3 = addr[3] as number;
    const words = this.words;
    const prefixes = this.prefixes;
    for (let r = 0; r < prefixes.length; r++) {
      const p = prefixes[r] as number;
      const b = r * 4;
      if (
        wordMatches(w0, words[b] as number, p) &&
        wordMatches(w1, words[b + 1] as number, p - 32) &&
        wordMatches(w2, words[b + 2] as number, p - 64) &&
        wordMatches(w3, words[b + 3] as number, p - 96)
      ) {
        return true;
      }
    }
    return false;
  }
}

/** The first `bits` bits (clamped to 0..32) of a and b agree. */
function wordMatches(a: number, b: number, bits: number): boolean {
  if (bits <= 0) return true;
  if (bits >= 32) return a === b;
  const mask = (0xffffffff << (32 - bits)) >>> 0;
  return ((a ^ b) & mask) === 0;
}

export interface MapRule {
  /** Matches this destination address (exact) or network (CIDR). */
  match: CidrSet;
  /** Only this destination port, or any port when -1. */
  port: number;
  toHost: string;
  /** toHost as an address (null for a host name: the forwarder applies policy once it resolved it). */
  toAddress: { family: 4 | 6; words: Uint32Array } | null;
  /** New port, or -1 to keep the original. */
  toPort: number;
  text: string;
}

export interface Target {
  host: string;
  port: number;
  /** host as an address, when it is one (null for a host name). */
  address?: { family: 4 | 6; words: Uint32Array } | null;
}

export class DestinationPolicy {
  private readonly allow: CidrSet | null;
  private readonly deny: CidrSet;
  private readonly maps: MapRule[];

  constructor(opts: { allow?: string[]; deny?: string[]; map?: string[] }) {
    this.allow = opts.allow && opts.allow.length > 0 ? cidrSet(opts.allow, '--allow') : null;
    this.deny = cidrSet(opts.deny ?? [], '--deny');
    this.maps = (opts.map ?? []).map(parseMapRule);
  }

  /** Whether --allow / --deny let synfin dial this address (a resolved destination included). */
  permits(family: 4 | 6, words: Uint32Array): boolean {
    if (this.deny.size > 0 && this.deny.has(family, words)) return false;
    if (this.allow !== null && !this.allow.has(family, words)) return false;
    return true;
  }

  /** The target to dial for a connection to address:port, or null when policy denies it. */
  resolve(address: string, port: number): Target | null {
    const parsed = parseAddress(address);
    if (parsed === null) return { host: address, port, address: null };
    return this.resolveAddress(parsed.family, parsed.words, address, port);
  }

  /**
   * The same for an address already in numbers (the SYN's destination): `text` is its printed
   * form, the host to dial when no rule rewrites it.
   */
  resolveAddress(family: 4 | 6, words: Uint32Array, text: string, port: number): Target | null {
    let host = text;
    let toPort = port;
    let checkFamily: 4 | 6 | 0 = family;
    let checkWords = words;
    for (const rule of this.maps) {
      if ((rule.port === -1 || rule.port === port) && rule.match.has(family, words)) {
        host = rule.toHost;
        if (rule.toPort !== -1) toPort = rule.toPort;
        if (rule.toAddress === null) checkFamily = 0;
        else {
          checkFamily = rule.toAddress.family;
          checkWords = rule.toAddress.words;
        }
        break;
      }
    }
    // Policy applies to where we would really connect (after the rewrite); a host name is
    // checked by the forwarder once resolved (permits()).
    if (checkFamily !== 0 && !this.permits(checkFamily, checkWords)) return null;
    // The SYNs of a workload go to a few destinations, and a SYN's words are shared by every
    // tuple with that address (FlowTuple, internAddressWords): the same destination as the last
    // gets the same (frozen) target, not two objects per SYN (87 bytes, bench/alloc-sites.mjs).
    const last = this.last;
    if (last !== null && last.host === host && last.port === toPort && (last.address?.words ?? null) === (checkFamily === 0 ? null : checkWords) && (last.address?.family ?? 0) === checkFamily) {
      return last;
    }
    const target: Target = Object.freeze({ host, port: toPort, address: checkFamily === 0 ? null : Object.freeze({ family: checkFamily, words: checkWords }) });
    this.last = target;
    return target;
  }

  /** The target resolveAddress returned last (reused for the same destination). */
  private last: Readonly<Target> | null = null;
}

/**
 * synfin's own HTTP listener (--listen) as a destination: an app behind the device must never
 * reach it through synfin, where its connection would arrive from one of synfin's own addresses
 * (a loopback peer, to which the API shows connection addresses). A destination is synfin's
 * listener when its port is the listening port and its address is the listening address, the
 * unspecified address (connect() to 0.0.0.0 or :: reaches the local host), or, for a listener on
 * the unspecified address, any loopback address or address of a local interface. The interface
 * addresses are read (getifaddrs) only for a destination on the listening port: never per SYN
 * otherwise, and current when it matters.
 */
export class ListenGuard {
  private host: { family: 4 | 6; words: Uint32Array } | null = null;
  private wildcard = false;
  private port = -1;

  constructor(private readonly localAddresses: () => string[] = interfaceAddresses) {}

  /** The listener's address, once it listens (port resolved when 0 was asked for). */
  set(host: string, port: number): void {
    this.port = port;
    this.wildcard = host === '0.0.0.0' || host === '::';
    this.host = host === 'localhost' ? parseAddress('127.0.0.1') : parseAddress(host);
  }

  /** Whether dialling family/words:port would reach synfin's own listener. */
  isListener(family: 4 | 6, words: Uint32Array, port: number): boolean {
    if (port !== this.port) return false;
    if (isUnspecified(family, words)) return true;
    if (this.wildcard) {
      if (LOOPBACK.has(family, words)) return true;
      const local = new CidrSet();
      for (const a of this.localAddresses()) {
        const parsed = parseAddress(a);
        if (parsed !== null) local.add(parsed.family, parsed.words, parsed.family === 4 ? 32 : 128);
      }
      return local.has(family, words);
    }
    const h = this.host;
    if (h === null) return false;
    const own = new CidrSet();
    own.add(h.family, h.words, h.family === 4 ? 32 : 128);
    return own.has(family, words);
  }
}

const LOOPBACK = cidrSet(['127.0.0.0/8', '::1/128'], 'loopback');

function isUnspecified(family: 4 | 6, w: Uint32Array): boolean {
  if (family === 4) return w[3] === 0;
  return w[0] === 0 && w[1] === 0 && (w[2] === 0 || w[2] === 0xffff) && w[3] === 0;
}

function interfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.push(a.address.replace(/%.*$/, ''));
  return out;
}

/** Parse `ADDR`, `ADDR/LEN` into a CidrSet; throws ConfigError naming the option. */
export function cidrSet(cidrs: string[], option: string): CidrSet {
  const set = new CidrSet();
  for (const cidr of cidrs) addCidr(set, cidr, option);
  return set;
}

function addCidr(set: CidrSet, cidr: string, option: string): void {
  const slash = cidr.indexOf('/');
  const addrText = slash === -1 ? cidr : cidr.slice(0, slash);
  const addr = net.isIP(addrText) === 0 ? null : parseAddress(addrText);
  if (addr === null) throw new ConfigError(`${option}: "${cidr}" is not an IP address or CIDR`);
  const max = addr.family === 6 ? 128 : 32;
  if (slash === -1) {
    set.add(addr.family, addr.words, max);
    return;
  }
  const lenText = cidr.slice(slash + 1);
  const len = Number(lenText);
  if (!/^\d+$/.test(lenText) || len > max) {
    throw new ConfigError(`${option}: "${cidr}" has a bad prefix length (0-${max})`);
  }
  set.add(addr.family, addr.words, len);
}

/** `FROM=TO`, FROM = ADDR[:PORT] | CIDR | [V6]:PORT, TO = HOST[:PORT] | [V6][:PORT]. */
export function parseMapRule(text: string): MapRule {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) {
    throw new ConfigError(`--map: "${text}" must look like FROM=TO, e.g. 198.18.0.10:80=127.0.0.1:8080`);
  }
  const from = splitHostPort(text.slice(0, eq), `--map "${text}"`);
  const to = splitHostPort(text.slice(eq + 1), `--map "${text}"`);
  const match = new CidrSet();
  addCidr(match, from.host, `--map "${text}"`);
  const toAddress = net.isIP(to.host) === 0 ? null : parseAddress(to.host);
  return { match, port: from.port, toHost: to.host, toAddress, toPort: to.port, text };
}

/** Split `host`, `host:port`, `[v6]`, `[v6]:port`, `v4/len:port`; port -1 when absent. */
export function splitHostPort(s: string, what: string, allowPortZero = false): { host: string; port: number } {
  let host = s;
  let portText: string | null = null;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close === -1) throw new ConfigError(`${what}: unbalanced "[" in "${s}"`);
    host = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (rest.length > 0) {
      if (!rest.startsWith(':')) throw new ConfigError(`${what}: expected ":PORT" after "]" in "${s}"`);
      portText = rest.slice(1);
    }
  } else {
    const colons = s.split(':').length - 1;
    if (colons === 1) {
      const i = s.lastIndexOf(':');
      host = s.slice(0, i);
      portText = s.slice(i + 1);
    }
  }
  let port = -1;
  if (portText !== null) {
    port = Number(portText);
    if (!/^\d+$/.test(portText) || port < (allowPortZero ? 0 : 1) || port > 65535) {
      throw new ConfigError(`${what}: bad port "${portText}" (${allowPortZero ? 0 : 1}-65535)`);
    }
  }
  if (host.length === 0) throw new ConfigError(`${what}: missing host in "${s}"`);
  return { host, port };
}
