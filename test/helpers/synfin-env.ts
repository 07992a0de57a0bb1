/**
 * The whole proxy in this process, for end-to-end tests: synfin's TUN device moved into a fresh
 * namespace (the app's side), its upstream sockets on this host, and destinations mapped to
 * servers the test runs on 127.0.0.1.
 *
 *   const env = await startSynfinEnv();
 *   // in the namespace, 198.18.N.2:PORT reaches 127.0.0.1:PORT through synfin
 *   await env.ns.exec('curl', ['-s', `http://${env.serverAddr}:${port}/`]);
 *   await env.close();
 */
import type { Logger } from 'pino';
import { DEFAULT_CONFIG, type Config } from '../../src/config.js';
import { createLogger } from '../../src/observability/log.js';
import { startSynfin, type Synfin } from '../../src/runtime.js';
import { NetNs, uniqueIfName } from './netns.js';

export interface SynfinEnv {
  ns: NetNs;
  synfin: Synfin;
  clientAddr: string;
  serverAddr: string;
  /** GET a path of synfin's HTTP API as JSON. */
  api<T = unknown>(path: string): Promise<T>;
  /** GET /metrics as text. */
  metrics(): Promise<string>;
  close(): Promise<void>;
}

let counter = 0;

export interface SynfinEnvOptions {
  /** IPv6 on the app side (fd00:N::/64, mapped to ::1) instead of IPv4. */
  ipv6?: boolean;
  /** synfin's logger (default: one at config.logLevel on stdout); tests that read log lines pass their own. */
  logger?: Logger;
}

export async function startSynfinEnv(overrides: Partial<Config> = {}, opts: SynfinEnvOptions = {}): Promise<SynfinEnv> {
  const n = ((process.pid * 3 + counter++ * 11) % 200) + 20;
  const clientAddr = opts.ipv6 === true ? `fd00:${n}::1` : `198.19.${n}.1`;
  const serverAddr = opts.ipv6 === true ? `fd00:${n}::2` : `198.19.${n}.2`;
  const ns = NetNs.create('e2e');
  if (opts.ipv6 === true) {
    // No duplicate address detection on the TUN link: the address is usable at once.
    ns.execSync('sysctl', ['-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
  }
  const config: Config = {
    ...DEFAULT_CONFIG,
    tun: uniqueIfName('sfe'),
    addresses: [opts.ipv6 === true ? `${clientAddr}/64` : `${clientAddr}/24`],
    listenHost: '127.0.0.1',
    listenPort: 0,
    mslSeconds: 0.25,
    logLevel: 'silent',
    map: [opts.ipv6 === true ? `fd00:${n}::/64=::1` : `198.19.${n}.0/24=127.0.0.1`],
    shutdownGraceSeconds: 1,
    ...overrides,
  };
  let synfin: Synfin;
  try {
    synfin = await startSynfin(config, { netns: ns.name, logger: opts.logger ?? createLogger(config.logLevel) });
  } catch (err) {
    ns.destroy();
    throw err;
  }
  const base = synfin.listenUrl;
  return {
    ns,
    synfin,
    clientAddr,
    serverAddr,
    async api<T>(path: string): Promise<T> {
      const res = await fetch(base + path);
      return (await res.json()) as T;
    },
    async metrics(): Promise<string> {
      return (await fetch(base + '/metrics')).text();
    },
    async close() {
      await synfin.shutdown('test done');
      ns.destroy();
    },
  };
}

/** Sum of a metric's samples whose labels include every given label=value. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    const close = rest.indexOf('}');
    const labelText = rest[0] === '{' ? rest.slice(1, close) : '';
    const ok = Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`));
    if (!ok) continue;
    sum += Number(rest.slice(rest[0] === '{' ? close + 1 : 0).trim().split(' ')[0]);
  }
  return sum;
}
