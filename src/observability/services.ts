/**
 * Named services (--service NAME=CIDR[:PORT[-PORT]], --service-file FILE): which destinations a
 * name covers, and the classifier that gives every connection its service once, when its SYN
 * arrives (the index is kept on its FlowTuple and in the stack's columns, never looked up per
 * packet). The first rule that matches wins; anything else is `other`.
 *
 * Names are metric label values (synfin_service_*{service}), so they are bounded: at most
 * MAX_SERVICES distinct names, each 1-128 printable characters from a small set (letters,
 * digits and `._-/:@`, starting with a letter or digit), which never need escaping in the
 * Prometheus text format, in a query string or in JSON. `other` is reserved.
 */
import { ConfigError } from '../errors.js';
import { parseAddress } from '../wire/address.js';

/** The service of every destination no rule names; index 0 of every catalogue. */
export const OTHER_SERVICE = 'other';
/** Distinct names at most (the label's cardinality: 64 of them with 10,000 connections scrape in a few ms). */
export const MAX_SERVICES = 256;
/** Rules at most (a name may cover several networks and port ranges). */
export const MAX_SERVICE_RULES = 16_384;
export const SERVICE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._\/:@-]{0,127}$/;

/** One rule: a network and a port range, and the name it gives. */
export interface ServiceRule {
  name: string;
  family: 4 | 6;
  /** The network's address, host bits cleared (IPv4 in word 3). */
  words: Uint32Array;
  prefix: number;
  portLow: number;
  portHigh: number;
}

/** A rule without ports covers every port (0 included, so that serviceOf(ADDR) without a port finds it). */
const EVERY_PORT = { low: 0, high: 65535 };

/** Checks a name (a label value); throws ConfigError naming `where`. */
export function checkServiceName(name: unknown, where: string): string {
  if (typeof name !== 'string' || !SERVICE_NAME_PATTERN.test(name)) {
    throw new ConfigError(
      `${where}: service name ${JSON.stringify(name)} is not 1-128 characters of letters, digits and "._-/:@" starting with a letter or digit`,
    );
  }
  if (name === OTHER_SERVICE) throw new ConfigError(`${where}: "${OTHER_SERVICE}" is reserved for destinations no service names`);
  return name;
}

function maskWord(w: number, bits: number): number {
  if (bits >= 32) return w >>> 0;
  if (bits <= 0) return 0;
  return (w & (~0 << (32 - bits))) >>> 0;
}

/** CIDR (or a bare address: one host) → family, masked words, prefix. */
export function parseCidr(text: string, where: string): { family: 4 | 6; words: Uint32Array; prefix: number } {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const a = parseAddress(addrText);
  if (a === null) throw new ConfigError(`${where}: "${text}" is not an IP address or CIDR`);
  const max = a.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    prefix = Number(lenText);
    if (!/^\d{1,3}$/.test(lenText) || prefix > max) throw new ConfigError(`${where}: "${text}" has a bad prefix length (0-${max})`);
  }
  const words = new Uint32Array(4);
  if (a.family === 4) words[3] = maskWord(a.words[3]!, prefix);
  else for (let i = 0; i < 4; i++) words[i] = maskWord(a.words[i]!, prefix - 32 * i);
  return { family: a.family, words, prefix };
}

/** PORT or LOW-HIGH (1-65535). */
export function parsePortRange(text: string, where: string): { low: number; high: number } {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text.trim());
  const low = m === null ? NaN : Number(m[1]);
  const high = m === null ? NaN : m[2] === undefined ? low : Number(m[2]);
  if (!(low >= 1 && high <= 65535 && low <= high)) throw new ConfigError(`${where}: bad port or port range "${text}" (1-65535, LOW-HIGH with LOW ≤ HIGH)`);
  return { low, high };
}

/**
 * `NAME=CIDR[:PORT[-PORT]]`. An IPv6 network with ports is written after its prefix
 * (`db=2001:db8::/64:5432`) or in brackets (`db=[2001:db8::1]:5432`, `db=[2001:db8::/64]:5432`);
 * a bare address is one host.
 */
export function parseServiceSpec(text: string, where = '--service'): ServiceRule {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) {
    throw new ConfigError(`${where}: "${text}" must look like NAME=CIDR[:PORT[-PORT]], e.g. payments=10.0.12.0/24:443`);
  }
  const name = checkServiceName(text.slice(0, eq), `${where} "${text}"`);
  const rest = text.slice(eq + 1).trim();
  let cidr = rest;
  let ports: string | null = null;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw new ConfigError(`${where}: unbalanced "[" in "${text}"`);
    cidr = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw new ConfigError(`${where}: expected ":PORT" after "]" in "${text}"`);
      ports = after.slice(1);
    }
  } else {
    const slash = rest.indexOf('/');
    // After a prefix, a colon starts the ports; without one, only IPv4 (one colon) can carry them.
    const colon = slash >= 0 ? rest.indexOf(':', slash) : rest.indexOf(':') === rest.lastIndexOf(':') ? rest.indexOf(':') : -1;
    if (colon >= 0) {
      cidr = rest.slice(0, colon);
      ports = rest.slice(colon + 1);
    }
  }
  const net = parseCidr(cidr, `${where} "${text}"`);
  const range = ports === null ? EVERY_PORT : parsePortRange(ports, `${where} "${text}"`);
  return { name, family: net.family, words: net.words, prefix: net.prefix, portLow: range.low, portHigh: range.high };
}

/**
 * A --service-file: a YAML or JSON list of `{name, cidr, ports?}`. `cidr` is a CIDR or an
 * address; `ports` (optional: every port) is a port, "LOW-HIGH", or a list of them. A name may
 * appear in several entries (a dual-stack service, several networks); the order is the order of
 * matching. An empty file or an empty list names nothing.
 */
export function parseServiceDocument(doc: unknown, where: string): ServiceRule[] {
  if (doc === null || doc === undefined) return [];
  if (!Array.isArray(doc)) throw new ConfigError(`${where}: expected a list of {name, cidr, ports} entries`);
  const rules: ServiceRule[] = [];
  doc.forEach((entry: unknown, i) => {
    const at = `${where} entry ${i + 1}`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new ConfigError(`${at}: expected {name, cidr, ports}`);
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) if (k !== 'name' && k !== 'cidr' && k !== 'ports') throw new ConfigError(`${at}: unknown key "${k}" (name, cidr, ports)`);
    const name = checkServiceName(e.name, at);
    if (typeof e.cidr !== 'string') throw new ConfigError(`${at}: "cidr" must be a CIDR or an address`);
    const net = parseCidr(e.cidr.trim(), at);
    const portList = e.ports === undefined || e.ports === null ? [null] : Array.isArray(e.ports) ? e.ports : [e.ports];
    if (portList.length === 0) throw new ConfigError(`${at}: "ports" is an empty list (leave it out for every port)`);
    for (const p of portList) {
      let range = EVERY_PORT;
      if (p !== null) {
        if (typeof p !== 'number' && typeof p !== 'string') throw new ConfigError(`${at}: a port is a number or "LOW-HIGH"`);
        range = parsePortRange(String(p), at);
      }
      rules.push({ name, family: net.family, words: net.words, prefix: net.prefix, portLow: range.low, portHigh: range.high });
    }
  });
  return rules;
}

/**
 * The services of one configuration: names (index 0 is `other`, then each name in the order it
 * first appears) and the rules, laid out in typed arrays so that classify() is a loop of integer
 * compares (each rule: ~2 ns for IPv4; 256 rules under a microsecond, once per connection).
 */
export class ServiceCatalogue {
  readonly names: readonly string[];
  readonly ruleCount: number;
  private readonly indexByName: Map<string, number>;
  // IPv4: network, mask, ports, name index per rule.
  private readonly v4: Uint32Array;
  private readonly v4n: number;
  // IPv6: four network words, four mask words, then ports and index, per rule.
  private readonly v6: Uint32Array;
  private readonly v6n: number;

  constructor(rules: readonly ServiceRule[]) {
    if (rules.length > MAX_SERVICE_RULES) throw new ConfigError(`--service: ${rules.length} rules, more than ${MAX_SERVICE_RULES}`);
    const names = [OTHER_SERVICE];
    const indexByName = new Map<string, number>([[OTHER_SERVICE, 0]]);
    for (const r of rules) {
      if (!indexByName.has(r.name)) {
        indexByName.set(r.name, names.length);
        names.push(r.name);
      }
    }
    if (names.length - 1 > MAX_SERVICES) {
      throw new ConfigError(`--service: ${names.length - 1} service names, more than ${MAX_SERVICES} (each name is a label value of synfin_service_*)`);
    }
    this.names = names;
    this.indexByName = indexByName;
    this.ruleCount = rules.length;
    const r4 = rules.filter((r) => r.family === 4);
    const r6 = rules.filter((r) => r.family === 6);
    this.v4n = r4.length;
    this.v4 = new Uint32Array(r4.length * 5);
    r4.forEach((r, i) => {
      const b = i * 5;
      this.v4[b] = r.words[3]!;
      this.v4[b + 1] = maskWord(0xffffffff, r.prefix);
      this.v4[b + 2] = r.portLow;
      this.v4[b + 3] = r.portHigh;
      this.v4[b + 4] = indexByName.get(r.name)!;
    });
    this.v6n = r6.length;
    this.v6 = new Uint32Array(r6.length * 11);
    r6.forEach((r, i) => {
      const b = i * 11;
      for (let w = 0; w < 4; w++) {
        this.v6[b + w] = r.words[w]!;
        this.v6[b + 4 + w] = maskWord(0xffffffff, r.prefix - 32 * w);
      }
      this.v6[b + 8] = r.portLow;
      this.v6[b + 9] = r.portHigh;
      this.v6[b + 10] = indexByName.get(r.name)!;
    });
  }

  /** Named services (without `other`). */
  get size(): number {
    return this.names.length - 1;
  }

  /** The index of the first rule matching the destination (IPv4 in word 3), 0 (`other`) when none does. */
  classify(family: 4 | 6, words: Uint32Array, port: number): number {
    if (family === 4) {
      const t = this.v4;
      const a = words[3]!;
      for (let i = 0, b = 0; i < this.v4n; i++, b += 5) {
        if (((a & t[b + 1]!) >>> 0) === t[b] && port >= t[b + 2]! && port <= t[b + 3]!) return t[b + 4]!;
      }
      return 0;
    }
    const t = this.v6;
    const a0 = words[0]!;
    const a1 = words[1]!;
    const a2 = words[2]!;
    const a3 = words[3]!;
    for (let i = 0, b = 0; i < this.v6n; i++, b += 11) {
      if (
        ((a0 & t[b + 4]!) >>> 0) === t[b] &&
        ((a1 & t[b + 5]!) >>> 0) === t[b + 1] &&
        ((a2 & t[b + 6]!) >>> 0) === t[b + 2] &&
        ((a3 & t[b + 7]!) >>> 0) === t[b + 3] &&
        port >= t[b + 8]! &&
        port <= t[b + 9]!
      ) {
        return t[b + 10]!;
      }
    }
    return 0;
  }

  nameOf(index: number): string {
    return this.names[index] ?? OTHER_SERVICE;
  }

  /** A name's index; -1 for a name this catalogue does not have (`other` is 0). */
  indexOf(name: string): number {
    return this.indexByName.get(name) ?? -1;
  }

  /**
   * The service of a destination as /api/connections spells it (`ADDR:PORT`, `[V6]:PORT`, or an
   * address without port: then only rules without ports match). `other` when nothing
   * matches or the text is not a destination.
   */
  serviceOf(destination: string): string {
    const d = parseDestination(destination);
    return d === null ? OTHER_SERVICE : this.nameOf(this.classify(d.family, d.words, d.port));
  }
}

/** `ADDR:PORT`, `[V6]:PORT`, `ADDR` or a bare IPv6 address; port 0 when absent. */
function parseDestination(text: string): { family: 4 | 6; words: Uint32Array; port: number } | null {
  let host = text;
  let port = 0;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return null;
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!/^:\d{1,5}$/.test(rest)) return null;
      port = Number(rest.slice(1));
    }
  } else if (text.indexOf(':') >= 0 && text.indexOf(':') === text.lastIndexOf(':')) {
    const i = text.indexOf(':');
    host = text.slice(0, i);
    if (!/^\d{1,5}$/.test(text.slice(i + 1))) return null;
    port = Number(text.slice(i + 1));
  }
  const a = parseAddress(host);
  if (a === null || port > 65535) return null;
  return { family: a.family, words: a.words, port };
}

/** The empty catalogue: every destination is `other`. */
export const NO_SERVICES = new ServiceCatalogue([]);

/**
 * The services in force, replaced as a whole when --service-file changes. Listeners hear of a
 * replacement synchronously (the registry remaps live connections, the metrics their series).
 */
export class Services {
  private catalogue: ServiceCatalogue;
  private readonly listeners: Array<(next: ServiceCatalogue, previous: ServiceCatalogue) => void> = [];

  constructor(initial: ServiceCatalogue = NO_SERVICES) {
    this.catalogue = initial;
  }

  get current(): ServiceCatalogue {
    return this.catalogue;
  }

  onChange(listener: (next: ServiceCatalogue, previous: ServiceCatalogue) => void): void {
    this.listeners.push(listener);
  }

  replace(next: ServiceCatalogue): void {
    const previous = this.catalogue;
    this.catalogue = next;
    for (const l of this.listeners) l(next, previous);
  }

  /** See ServiceCatalogue.serviceOf: the service of a destination (`ADDR:PORT`) under the services in force. */
  serviceOf(destination: string): string {
    return this.catalogue.serviceOf(destination);
  }

  /** The service of a destination given as numbers (IPv4 in word 3) under the services in force: the flight recorder's serviceOf hook. */
  classifyName(family: 4 | 6, words: Uint32Array, port: number): string {
    const c = this.catalogue;
    return c.nameOf(c.classify(family, words, port));
  }
}

/**
 * Index `i` of `previous` → index of the same name in `next` (0, `other`, for a name that went
 * away): a connection keeps the service it was classified under when it opened, by name.
 */
export function remapIndices(previous: ServiceCatalogue, next: ServiceCatalogue): Int32Array {
  const map = new Int32Array(previous.names.length);
  previous.names.forEach((n, i) => (map[i] = Math.max(0, next.indexOf(n))));
  return map;
}
