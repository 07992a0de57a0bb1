/**
 * Where a connection may go: `--map` rewrites a destination, then `--allow` / `--deny` CIDR lists
 * decide. Deny wins over allow; an empty allow list allows everything not denied.
 * CIDR matching is Node's net.BlockList (IPv4 and IPv6, IPv4-mapped IPv6 handled by Node).
 */
import net from 'node:net';
import { ConfigError } from '../errors.js';

export interface MapRule {
  /** Matches this destination address (exact) or network (CIDR). */
  match: net.BlockList;
  /** Only this destination port, or any port when -1. */
  port: number;
  toHost: string;
  /** New port, or -1 to keep the original. */
  toPort: number;
  text: string;
}

export interface Target {
  host: string;
  port: number;
}

export class DestinationPolicy {
  private readonly allow: net.BlockList | null;
  private readonly deny: net.BlockList;
  private readonly maps: MapRule[];

  constructor(opts: { allow?: string[]; deny?: string[]; map?: string[] }) {
    this.allow = opts.allow && opts.allow.length > 0 ? blockList(opts.allow, '--allow') : null;
    this.deny = blockList(opts.deny ?? [], '--deny');
    this.maps = (opts.map ?? []).map(parseMapRule);
  }

  /** The target to dial for a connection to address:port, or null when policy denies it. */
  resolve(address: string, port: number): Target | null {
    let host = address;
    let toPort = port;
    const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
    for (const rule of this.maps) {
      if ((rule.port === -1 || rule.port === port) && rule.match.check(address, family)) {
        host = rule.toHost;
        if (rule.toPort !== -1) toPort = rule.toPort;
        break;
      }
    }
    // Policy applies to where we would really connect (after the rewrite).
    if (net.isIP(host) !== 0) {
      const fam = net.isIPv6(host) ? 'ipv6' : 'ipv4';
      if (this.deny.check(host, fam)) return null;
      if (this.allow !== null && !this.allow.check(host, fam)) return null;
    }
    return { host, port: toPort };
  }
}

/** Parse `ADDR`, `ADDR/LEN` into a BlockList; throws ConfigError naming the option. */
export function blockList(cidrs: string[], option: string): net.BlockList {
  const list = new net.BlockList();
  for (const cidr of cidrs) addCidr(list, cidr, option);
  return list;
}

function addCidr(list: net.BlockList, cidr: string, option: string): void {
  const slash = cidr.indexOf('/');
  const addr = slash === -1 ? cidr : cidr.slice(0, slash);
  const version = net.isIP(addr);
  if (version === 0) throw new ConfigError(`${option}: "${cidr}" is not an IP address or CIDR`);
  const family = version === 6 ? 'ipv6' : 'ipv4';
  const max = version === 6 ? 128 : 32;
  if (slash === -1) {
    list.addAddress(addr, family);
    return;
  }
  const lenText = cidr.slice(slash + 1);
  const len = Number(lenText);
  if (!/^\d+$/.test(lenText) || len > max) {
    throw new ConfigError(`${option}: "${cidr}" has a bad prefix length (0-${max})`);
  }
  list.addSubnet(addr, len, family);
}

/** `FROM=TO`, FROM = ADDR[:PORT] | CIDR | [V6]:PORT, TO = HOST[:PORT] | [V6][:PORT]. */
export function parseMapRule(text: string): MapRule {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) {
    throw new ConfigError(`--map: "${text}" must look like FROM=TO, e.g. 198.18.0.10:80=127.0.0.1:8080`);
  }
  const from = splitHostPort(text.slice(0, eq), `--map "${text}"`);
  const to = splitHostPort(text.slice(eq + 1), `--map "${text}"`);
  const match = new net.BlockList();
  addCidr(match, from.host, `--map "${text}"`);
  return { match, port: from.port, toHost: to.host, toPort: to.port, text };
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
