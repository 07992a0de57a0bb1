/**
 * synfin's configuration: command-line options, SYNFIN_* environment variables and an optional
 * YAML/JSON file, merged in that order of precedence (flag > environment > file > default) and
 * validated into one typed object. Every problem is a ConfigError whose message is one line
 * naming the option, so the CLI can print it and exit 2.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';
import { API_ADDRESS_MODES, type ApiAddressMode } from './http/app.js';
import { LOG_LEVELS, type LogLevel } from './observability/log.js';

export { API_ADDRESS_MODES, LOG_LEVELS, type ApiAddressMode, type LogLevel };
import { cidrSet, parseMapRule, splitHostPort } from './proxy/policy.js';
import { parseFaultSpec } from './stack/fault.js';
import { parseByteSize } from './tcp/memory-budget.js';
import { buildCatalogue, readServiceFile } from './service-file.js';
import { CAPTURE_MAX_BYTES, CAPTURE_MIN_BYTES, DEFAULT_CAPTURE_SNAPLEN, MAX_CAPTURE_SNAPLEN } from './stack/capture.js';



/** The most closed connections --history may keep (about 175 MB at 175 bytes a record). */
export const MAX_HISTORY = 1_000_000;

export interface Config {
  tun: string;
  addresses: string[];
  mtu: number | null;
  routes: string[];
  listenHost: string;
  listenPort: number;
  /** Who sees connection addresses in /api/connections and /api/events (src/http/app.ts). */
  apiAddresses: ApiAddressMode;
  mslSeconds: number;
  connectTimeoutSeconds: number;
  idleTimeoutSeconds: number;
  maxConnections: number;
  /** TIME-WAIT records kept at most; beyond, closing connections skip TIME-WAIT (Linux tcp_max_tw_buckets). */
  maxTimeWait: number;
  upstreamBind: string | null;
  logLevel: LogLevel;
  map: string[];
  allow: string[];
  deny: string[];
  /** Seconds open connections get to finish after SIGTERM/SIGINT. */
  shutdownGraceSeconds: number;
  /** Half-open connections before SYN cookies engage. */
  synBacklog: number;
  congestionControl: 'newreno' | 'cubic';
  /** RFC 9406 HyStart++ in the initial slow start of either algorithm (src/tcp/cc/hystart.ts). */
  hystart: boolean;
  /** Testing aid: a seeded fault spec applied in front of the device (src/stack/fault.ts), or null. */
  impair: string | null;
  /** Most /api/events readers at once; more get 503 (src/http/app.ts). */
  maxEventStreams: number;
  /** Host names the API and the live page answer to besides IP literals and localhost (DNS rebinding guard). */
  apiHosts: string[];
  /** Buffer budget of all connections together, bytes; null = from the cgroup or 256 MiB (src/stack/memory-budget.ts). */
  memoryLimit: number | null;
  /** --service NAME=CIDR[:PORT[-PORT]] rules, matched before the --service-file's (src/observability/services.ts). */
  services: string[];
  /** --service-file: a YAML/JSON list of {name, cidr, ports}, re-read when it changes and on SIGHUP. */
  serviceFile: string | null;
  /** Closed connections the flight recorder keeps for /api/history; 0 turns it off (src/observability/history.ts). */
  history: number;
  /** One pino info line per closed connection, the history record (off by default). */
  accessLog: boolean;
  /**
   * Capabilities kept through the drop once the device is ready (src/tun/caps.ts): only
   * `sys_ptrace` and `dac_read_search`, granted on purpose to read the fd tables of the app's
   * processes of another uid (appProcess), as `ss -p` needs them.
   */
  keepCapabilities: string[];
  /** Bytes of the packet capture ring (src/stack/capture.ts); 0 = off. */
  captureBuffer: number;
  /** Bytes of TCP payload kept per captured packet after the headers. */
  captureSnaplen: number;
  /**
   * Worker threads, one TUN queue and one whole stack each (src/workers/); 1 = the single-thread
   * path. `auto` in the options resolves to os.availableParallelism() (at most MAX_WORKERS).
   */
  workers: number;
}

/** Most --workers: each is a thread with its own heap and a queue of the device. */
export const MAX_WORKERS = 64;

/**
 * What --keep-capability may keep: reading other users' /proc/PID/fd for appProcess
 * (src/observability/app-process.ts): listing the directory is a permission check
 * (dac_read_search), reading each link a ptrace read check (sys_ptrace).
 */
export const KEEPABLE_CAPABILITIES = ['sys_ptrace', 'dac_read_search'] as const;

/** One option of the product surface: its flag, its type, and its default. */
interface OptionSpec {
  key: keyof Config;
  flag: string;
  /**
   * `boolean`: a flag without a value (`--access-log`); `true`/`false`/`1`/`0` in the environment and the file.
   * `switch`: the same values, given on the command line too (`--hystart off`), for what is on by default.
   */
  kind: 'string' | 'number' | 'list' | 'bytes' | 'boolean' | 'switch' | 'workers';
  help: string;
  placeholder: string;
}

export const OPTION_SPECS: readonly OptionSpec[] = [
  { key: 'tun', flag: 'tun', kind: 'string', placeholder: 'NAME', help: 'TUN device to attach to, created if missing (default synfin0)' },
  { key: 'addresses', flag: 'address', kind: 'list', placeholder: 'CIDR', help: 'address for the TUN side, IPv4 or IPv6 (repeatable)' },
  { key: 'mtu', flag: 'mtu', kind: 'number', placeholder: 'N', help: 'MTU of the TUN device' },
  { key: 'routes', flag: 'route', kind: 'list', placeholder: 'CIDR', help: 'route to add via the device (repeatable)' },
  { key: 'listenHost', flag: 'listen', kind: 'string', placeholder: 'HOST:PORT', help: 'HTTP server for metrics and the API (default 127.0.0.1:9477)' },
  { key: 'apiAddresses', flag: 'api-addresses', kind: 'string', placeholder: 'MODE', help: 'who sees connection addresses in the API: loopback (requests from loopback only), all, none (default loopback)' },
  { key: 'mslSeconds', flag: 'msl', kind: 'number', placeholder: 'SECONDS', help: 'maximum segment lifetime; TIME-WAIT lasts 2×MSL (default 30)' },
  { key: 'connectTimeoutSeconds', flag: 'connect-timeout', kind: 'number', placeholder: 'SECONDS', help: 'upstream connect timeout (default 10)' },
  { key: 'idleTimeoutSeconds', flag: 'idle-timeout', kind: 'number', placeholder: 'SECONDS', help: 'close connections idle this long; 0 = never (default 0)' },
  { key: 'maxConnections', flag: 'max-connections', kind: 'number', placeholder: 'N', help: 'refuse new connections above this many (default 100000)' },
  { key: 'maxTimeWait', flag: 'max-time-wait', kind: 'number', placeholder: 'N', help: 'TIME-WAIT records kept at most; beyond, a closing connection skips TIME-WAIT, as Linux past tcp_max_tw_buckets (default 32768)' },
  { key: 'upstreamBind', flag: 'upstream-bind', kind: 'string', placeholder: 'ADDR', help: 'source address for upstream sockets' },
  { key: 'logLevel', flag: 'log-level', kind: 'string', placeholder: 'LEVEL', help: `log level: ${LOG_LEVELS.join(', ')} (default info)` },
  { key: 'map', flag: 'map', kind: 'list', placeholder: 'FROM=TO', help: 'rewrite a destination, e.g. 198.18.0.10:80=127.0.0.1:8080 (repeatable)' },
  { key: 'allow', flag: 'allow', kind: 'list', placeholder: 'CIDR', help: 'only allow these destinations (repeatable)' },
  { key: 'deny', flag: 'deny', kind: 'list', placeholder: 'CIDR', help: 'refuse these destinations; wins over --allow (repeatable)' },
  { key: 'shutdownGraceSeconds', flag: 'shutdown-grace', kind: 'number', placeholder: 'SECONDS', help: 'time open connections get to finish on SIGTERM (default 10; a second SIGTERM ends it)' },
  { key: 'synBacklog', flag: 'syn-backlog', kind: 'number', placeholder: 'N', help: 'half-open connections before SYN cookies engage (default 1024)' },
  { key: 'congestionControl', flag: 'congestion-control', kind: 'string', placeholder: 'NAME', help: 'newreno or cubic (default cubic)' },
  { key: 'hystart', flag: 'hystart', kind: 'switch', placeholder: 'on|off', help: 'HyStart++ (RFC 9406): leave the initial slow start when the round-trip delay rises, before the window overshoots into loss, with either algorithm (default on)' },
  { key: 'memoryLimit', flag: 'memory-limit', kind: 'bytes', placeholder: 'BYTES', help: 'buffers of all connections together, e.g. 64MiB (default: half the cgroup memory.max, else 256MiB)' },
  { key: 'captureBuffer', flag: 'capture-buffer', kind: 'bytes', placeholder: 'BYTES', help: 'keep the app leg\'s packets in a ring of this size, e.g. 64MiB; 0 = off (default 0; POST /api/capture turns it on at runtime)' },
  { key: 'captureSnaplen', flag: 'capture-snaplen', kind: 'bytes', placeholder: 'BYTES', help: 'payload bytes kept per captured packet after the IP and TCP headers (default 128)' },
  { key: 'impair', flag: 'impair', kind: 'string', placeholder: 'SPEC', help: 'testing: seeded loss/delay in front of the device, e.g. loss=0.01,delay=5,seed=1' },
  { key: 'maxEventStreams', flag: 'max-event-streams', kind: 'number', placeholder: 'N', help: 'most /api/events readers at once, more get 503; 0 turns the stream off (default 16)' },
  { key: 'services', flag: 'service', kind: 'list', placeholder: 'NAME=CIDR:PORTS', help: 'NAME=CIDR[:PORT[-PORT]] names the destinations in a network (and port range) for the synfin_service_* metrics and the API, e.g. payments=10.0.12.0/24:443; first match wins, the rest is "other" (repeatable)' },
  { key: 'serviceFile', flag: 'service-file', kind: 'string', placeholder: 'FILE', help: 'YAML or JSON list of {name, cidr, ports} naming destinations after the --service ones; re-read when it changes and on SIGHUP' },
  { key: 'keepCapabilities', flag: 'keep-capability', kind: 'list', placeholder: 'NAME', help: 'keep this capability after start: sys_ptrace and dac_read_search together name the app processes of another uid that hold connections (appProcess) (repeatable)' },
  { key: 'apiHosts', flag: 'api-host', kind: 'list', placeholder: 'NAME', help: 'a Host name the API and page answer to besides IP addresses and localhost; others get 421 (repeatable)' },
  { key: 'history', flag: 'history', kind: 'number', placeholder: 'N', help: 'closed connections kept for /api/history (about 175 bytes each); 0 turns the recorder off (default 10000)' },
  { key: 'accessLog', flag: 'access-log', kind: 'boolean', placeholder: '', help: 'log one info line per closed connection (its /api/history record)' },
  { key: 'workers', flag: 'workers', kind: 'workers', placeholder: 'N', help: `worker threads, each a whole stack on one queue of a multi-queue TUN device: 1-${MAX_WORKERS}, or auto (the cores this process may use); the global limits (--max-connections, --syn-backlog, --max-time-wait, --memory-limit) are split between them (default 1: one thread, no multi-queue)` },
];

export const DEFAULT_CONFIG: Config = {
  tun: 'synfin0',
  addresses: [],
  mtu: null,
  routes: [],
  listenHost: '127.0.0.1',
  listenPort: 9477,
  apiAddresses: 'loopback',
  mslSeconds: 30,
  connectTimeoutSeconds: 10,
  idleTimeoutSeconds: 0,
  maxConnections: 100_000,
  maxTimeWait: 32_768,
  upstreamBind: null,
  logLevel: 'info',
  map: [],
  allow: [],
  deny: [],
  shutdownGraceSeconds: 10,
  synBacklog: 1024,
  congestionControl: 'cubic',
  hystart: true,
  impair: null,
  maxEventStreams: 16,
  apiHosts: [],
  memoryLimit: null,
  services: [],
  serviceFile: null,
  history: 10_000,
  accessLog: false,
  keepCapabilities: [],
  captureBuffer: 0,
  captureSnaplen: DEFAULT_CAPTURE_SNAPLEN,
  workers: 1,
};

/** Environment variable of an option: --connect-timeout → SYNFIN_CONNECT_TIMEOUT. */
export function envName(flag: string): string {
  return `SYNFIN_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export type RawOptions = Partial<Record<string, string | string[] | undefined>>;

/**
 * Merge flags (already parsed into strings by the CLI), the environment and the config file
 * (`--config`, else SYNFIN_CONFIG). `flags` is keyed by flag name (`connect-timeout`), values as
 * typed on the command line.
 */
export function resolveConfig(flags: RawOptions, env: NodeJS.ProcessEnv, configFileFlag?: string): Config {
  // The file itself follows the same precedence: --config, else SYNFIN_CONFIG.
  const configFile = configFileFlag ?? (env[envName('config')] || undefined);
  const fileValues = configFile !== undefined ? readConfigFile(configFile) : {};
  const merged: Record<string, unknown> = {};
  for (const spec of OPTION_SPECS) {
    const fromFlag = flags[spec.flag];
    const fromEnv = env[envName(spec.flag)];
    const fromFile = fileValues[spec.flag];
    let raw: unknown;
    let source: string;
    if (fromFlag !== undefined && !(Array.isArray(fromFlag) && fromFlag.length === 0)) {
      raw = fromFlag;
      source = `--${spec.flag}`;
    } else if (fromEnv !== undefined && fromEnv !== '') {
      raw = spec.kind === 'list' ? fromEnv.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : fromEnv;
      source = envName(spec.flag);
    } else if (fromFile !== undefined) {
      raw = fromFile;
      source = `${spec.flag} in ${configFile}`;
    } else {
      continue;
    }
    merged[spec.key] = convert(spec, raw, source);
  }
  const config: Config = { ...DEFAULT_CONFIG, ...(merged as Partial<Config>) };
  // --listen carries host and port together.
  if (typeof merged.listenHost === 'string') {
    const { host, port } = parseListen(merged.listenHost);
    config.listenHost = host;
    config.listenPort = port;
  }
  validate(config);
  return config;
}

function convert(spec: OptionSpec, raw: unknown, source: string): unknown {
  switch (spec.kind) {
    case 'string':
      if (typeof raw !== 'string' && typeof raw !== 'number') throw new ConfigError(`${source}: expected a ${spec.placeholder}`);
      return String(raw);
    case 'number': {
      const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
      if (typeof raw === 'string' && raw.trim() === '') throw new ConfigError(`${source}: expected a number`);
      if (!Number.isFinite(n)) throw new ConfigError(`${source}: "${String(raw)}" is not a number`);
      return n;
    }
    case 'bytes': {
      // Plain bytes or with a unit: 67108864, 64MiB, 512M, 1GiB.
      const n = typeof raw === 'number' ? raw : parseByteSize(String(raw));
      if (!Number.isFinite(n)) throw new ConfigError(`${source}: "${String(raw)}" is not a size (bytes, or with KiB/MiB/GiB)`);
      return n;
    }
    case 'workers': {
      // A count, or `auto`: the cores this process may use (its affinity and cgroup quota, as
      // os.availableParallelism() reads them), at most MAX_WORKERS.
      if (typeof raw === 'string' && raw.trim().toLowerCase() === 'auto') return Math.min(MAX_WORKERS, os.availableParallelism());
      const n = typeof raw === 'number' ? raw : String(raw).trim() === '' ? Number.NaN : Number(String(raw).trim());
      if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
        throw new ConfigError(`${source}: "${String(raw)}" is not a number of workers (an integer 1-${MAX_WORKERS}, or auto)`);
      }
      return n;
    }
    case 'boolean':
    case 'switch': {
      if (raw === true || raw === false) return raw;
      const text = String(raw).trim().toLowerCase();
      if (text === 'true' || text === '1' || text === 'yes' || text === 'on') return true;
      if (text === 'false' || text === '0' || text === 'no' || text === 'off') return false;
      throw new ConfigError(`${source}: "${String(raw)}" is not ${spec.kind === 'switch' ? 'on or off' : 'true or false'}`);
    }
    case 'list': {
      const list = Array.isArray(raw) ? raw : [raw];
      return list.map((v) => {
        if (typeof v !== 'string') throw new ConfigError(`${source}: expected ${spec.placeholder} strings`);
        return v;
      });
    }
  }
}

export function parseListen(text: string): { host: string; port: number } {
  // Port 0 asks the kernel for a free port (the ready log line says which).
  const { host, port } = splitHostPort(text, '--listen', true);
  if (port === -1) throw new ConfigError(`--listen: "${text}" needs a port, e.g. 127.0.0.1:9477`);
  if (net.isIP(host) === 0 && host !== 'localhost') throw new ConfigError(`--listen: "${host}" is not an IP address`);
  return { host, port };
}

function validate(c: Config): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(c.tun)) {
    throw new ConfigError(`--tun: "${c.tun}" is not a valid interface name (1-15 letters, digits, "-", "_", ".")`);
  }
  for (const a of c.addresses) checkCidr(a, '--address', true);
  for (const r of c.routes) checkCidr(r, '--route', false);
  if (c.mtu !== null && (!Number.isInteger(c.mtu) || c.mtu < 1280 || c.mtu > 65535)) {
    throw new ConfigError(`--mtu: ${c.mtu} is out of range (1280-65535)`);
  }
  if (!(API_ADDRESS_MODES as readonly string[]).includes(c.apiAddresses)) {
    throw new ConfigError(`--api-addresses: "${String(c.apiAddresses)}" is not one of ${API_ADDRESS_MODES.join(', ')}`);
  }
  positive(c.mslSeconds, '--msl', false);
  positive(c.connectTimeoutSeconds, '--connect-timeout', false);
  positive(c.idleTimeoutSeconds, '--idle-timeout', true);
  positive(c.shutdownGraceSeconds, '--shutdown-grace', true);
  integer(c.maxConnections, '--max-connections', 1);
  integer(c.maxTimeWait, '--max-time-wait', 0);
  integer(c.synBacklog, '--syn-backlog', 1);
  if (c.memoryLimit !== null) integer(c.memoryLimit, '--memory-limit', 1024 * 1024);
  integer(c.captureBuffer, '--capture-buffer', 0);
  if (c.captureBuffer !== 0 && (c.captureBuffer < CAPTURE_MIN_BYTES || c.captureBuffer > CAPTURE_MAX_BYTES)) {
    throw new ConfigError(`--capture-buffer: ${c.captureBuffer} is out of range (0 for off, or 256KiB-1GiB)`);
  }
  integer(c.captureSnaplen, '--capture-snaplen', 0);
  if (c.captureSnaplen > MAX_CAPTURE_SNAPLEN) throw new ConfigError(`--capture-snaplen: ${c.captureSnaplen} is out of range (0-${MAX_CAPTURE_SNAPLEN})`);
  if (c.upstreamBind !== null && net.isIP(c.upstreamBind) === 0) {
    throw new ConfigError(`--upstream-bind: "${c.upstreamBind}" is not an IP address`);
  }
  if (!(LOG_LEVELS as readonly string[]).includes(c.logLevel)) {
    throw new ConfigError(`--log-level: "${c.logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  }
  if (c.congestionControl !== 'newreno' && c.congestionControl !== 'cubic') {
    throw new ConfigError(`--congestion-control: "${String(c.congestionControl)}" is not newreno or cubic`);
  }
  if (c.impair !== null) {
    parseFaultSpec(c.impair); // throws ConfigError naming the bad item
  }
  if (!Number.isInteger(c.workers) || c.workers < 1 || c.workers > MAX_WORKERS) {
    throw new ConfigError(`--workers: ${c.workers} is out of range (1-${MAX_WORKERS}, or auto)`);
  }
  integer(c.history, '--history', 0);
  if (c.history > MAX_HISTORY) throw new ConfigError(`--history: ${c.history} is out of range (0-${MAX_HISTORY})`);
  integer(c.maxEventStreams, '--max-event-streams', 0);
  if (c.maxEventStreams > 10_000) throw new ConfigError(`--max-event-streams: ${c.maxEventStreams} is out of range (0-10000)`);
  for (const h of c.apiHosts) {
    // A DNS name (RFC 1123 labels), without port or scheme: IP literals are always accepted anyway.
    if (!/^(?=.{1,253}\.?$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/.test(h) || net.isIP(h) !== 0) {
      throw new ConfigError(`--api-host: "${h}" is not a host name (letters, digits, "-" and ".", no port; IP addresses need no option)`);
    }
  }
  for (const k of c.keepCapabilities) {
    if (!(KEEPABLE_CAPABILITIES as readonly string[]).includes(k)) {
      throw new ConfigError(`--keep-capability: "${k}" is not one synfin keeps (${KEEPABLE_CAPABILITIES.join(', ')})`);
    }
  }
  cidrSet(c.allow, '--allow');
  cidrSet(c.deny, '--deny');
  for (const m of c.map) parseMapRule(m);
  // Names, networks, ports and the 256-name bound, the file's entries included (read here so that
  // `synfin check` and the start-up catch a bad file; the runtime reads it again).
  buildCatalogue(c.services, c.serviceFile === null ? [] : readServiceFile(c.serviceFile).rules);
}

function checkCidr(text: string, option: string, needsPrefix: boolean): void {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  const version = net.isIP(addr);
  if (version === 0) throw new ConfigError(`${option}: "${text}" is not an IP address or CIDR`);
  if (slash === -1) {
    if (needsPrefix) throw new ConfigError(`${option}: "${text}" needs a prefix length, e.g. ${addr}/${version === 6 ? 64 : 24}`);
    return;
  }
  const len = text.slice(slash + 1);
  const max = version === 6 ? 128 : 32;
  if (!/^\d+$/.test(len) || Number(len) > max) throw new ConfigError(`${option}: "${text}" has a bad prefix length (0-${max})`);
}

function positive(v: number, option: string, zeroOk: boolean): void {
  if (v < 0 || (!zeroOk && v === 0)) throw new ConfigError(`${option}: ${v} must be ${zeroOk ? '≥ 0' : '> 0'}`);
}

function integer(v: number, option: string, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new ConfigError(`${option}: ${v} must be an integer ≥ ${min}`);
}

/** Read a YAML (or JSON) file of options keyed by flag name (`connect-timeout: 5`) or camelCase. */
function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(`--config: cannot read ${path} (${code})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new ConfigError(`--config: ${path} is not valid YAML: ${msg}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`--config: ${path} must hold a mapping of options`);
  const out: Record<string, unknown> = {};
  const known = new Map<string, string>();
  for (const spec of OPTION_SPECS) {
    known.set(spec.flag, spec.flag);
    known.set(spec.flag.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase()), spec.flag);
    known.set(spec.key, spec.flag);
  }
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    const flag = known.get(k);
    if (flag === undefined) throw new ConfigError(`--config: unknown option "${k}" in ${path}`);
    out[flag] = v;
  }
  return out;
}
