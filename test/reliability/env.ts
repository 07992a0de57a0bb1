/**
 * The whole proxy in this process for the reliability tests, with what those tests measure:
 * captured log lines, this process's open file descriptors, the connection table, and upstream
 * servers that misbehave on purpose. synfin's TUN device lives in a fresh namespace (the app's
 * side: real programs and raw packets come from there); its upstream sockets use this host's
 * network, where destinations are mapped to servers on 127.0.0.1.
 *
 *   const env = await startEnv({ idleTimeoutSeconds: 2 });
 *   await env.ns.exec(process.execPath, [PEER, 'connect', env.serverAddr, String(port)]);
 *   await env.settle();             // table empty and no fd above the baseline
 *   await env.close();
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { DEFAULT_CONFIG, type Config } from '../../src/config.js';
import { startSynfin, type Synfin } from '../../src/runtime.js';
import { NetNs, uniqueIfName } from '../helpers/netns.js';

export const PEER = path.join(import.meta.dirname, 'peer.mjs');
export const ATTACK = path.join(import.meta.dirname, 'attack.py');
/** Debian's python3 (python3-scapy lives there), whatever python3 comes first in PATH. */
export const PYTHON = '/usr/bin/python3';

let counter = 0;

export interface Env {
  ns: NetNs;
  synfin: Synfin;
  /** The app's address on the TUN device (198.19.N.1) and the subnet's prefix ("198.19.N."). */
  clientAddr: string;
  prefix: string;
  /** An address in the subnet; the /24 is mapped to 127.0.0.1 keeping the port. */
  serverAddr: string;
  tunName: string;
  logs: string[];
  api<T = unknown>(p: string): Promise<T>;
  status(p: string): Promise<number>;
  metrics(): Promise<string>;
  /** Open file descriptors of this process. */
  fds(): number;
  /** Connections in the table (live ones, pending SYNs and TIME-WAIT records). */
  tableSize(): number;
  /** Take the fd baseline now (after a warm-up). */
  markBaseline(): void;
  /**
   * One connection from the app's namespace to `port` (the first lazily opens handles), then the
   * table settles and the fd baseline is taken; throws if that connection fails.
   */
  warmUp(port: number): Promise<void>;
  baselineFds: number;
  /**
   * Wait until the table is empty, no pipe is left and the fd count is back to the baseline;
   * throws with what is left after `timeoutMs`.
   */
  settle(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface EnvOptions {
  /** Map rules placed before the catch-all /24 → 127.0.0.1 rule (first match wins). */
  extraMap?: (prefix: string) => string[];
}

export function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** What each open descriptor of this process is (socket:[inode], pipe:[inode], anon_inode:...). */
export function describeFds(): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      out.push(`${fd}=${fs.readlinkSync(`/proc/self/fd/${fd}`)}`);
    } catch {
      // closed meanwhile (the readdir handle itself)
    }
  }
  return out;
}

/** Kill a child process and wait until it is gone and its stdio pipes are closed. */
export function killAndWait(child: import('node:child_process').ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      if (child.stdout?.readableEnded !== false) return resolve();
    }
    child.once('close', () => resolve());
    child.kill(signal);
  });
}

export async function startEnv(overrides: Partial<Config> = {}, opts: EnvOptions = {}): Promise<Env> {
  const n = ((process.pid * 7 + counter++ * 13) % 200) + 20;
  const prefix = `198.19.${n}.`;
  const clientAddr = `${prefix}1`;
  const serverAddr = `${prefix}2`;
  const ns = NetNs.create('rel');
  const tunName = uniqueIfName('sfr');
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const config: Config = {
    ...DEFAULT_CONFIG,
    tun: tunName,
    addresses: [`${clientAddr}/24`],
    listenHost: '127.0.0.1',
    listenPort: 0,
    mslSeconds: 0.25,
    logLevel: 'info',
    map: [...(opts.extraMap?.(prefix) ?? []), `${prefix}0/24=127.0.0.1`],
    shutdownGraceSeconds: 1,
    ...overrides,
  };
  const logger = pino({ level: config.logLevel, base: { name: 'synfin' } }, sink);
  let synfin: Synfin;
  try {
    synfin = await startSynfin(config, { netns: ns.name, logger });
  } catch (err) {
    ns.destroy();
    throw err;
  }
  const base = synfin.listenUrl;
  let baselineList = describeFds();
  const env: Env = {
    ns,
    synfin,
    clientAddr,
    prefix,
    serverAddr,
    tunName,
    logs,
    baselineFds: openFds(),
    async api<T>(p: string): Promise<T> {
      return JSON.parse((await httpGet(base + p)).body) as T;
    },
    async status(p: string): Promise<number> {
      return (await httpGet(base + p)).status;
    },
    async metrics(): Promise<string> {
      return (await httpGet(base + '/metrics')).body;
    },
    fds: openFds,
    tableSize() {
      const s = synfin.stack;
      let pending = 0;
      for (const _ of s.pendingSyns()) pending++;
      return s.connectionCount + s.timeWaitRecords + pending;
    },
    markBaseline() {
      env.baselineFds = openFds() - synfin.proxy.spareSockets;
      baselineList = describeFds();
    },
    async warmUp(port: number) {
      const r = await ns.exec(process.execPath, [PEER, 'connect', serverAddr, String(port)]);
      const warm = lastJson<{ ok: boolean }>(r.stdout);
      if (!warm.ok) throw new Error(`warm-up connection failed: ${r.stdout.trim()} ${r.stderr.trim()}`);
      await env.settle(5000).catch(() => {});
      env.markBaseline();
    },
    async settle(timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const size = env.tableSize();
        const pipes = synfin.proxy.pipes.size;
        const dials = synfin.proxy.dialsInFlight;
        // The sockets the forwarder makes ahead of its next dials (a bounded few) are not leaks.
        const fds = openFds() - synfin.proxy.spareSockets;
        if (size === 0 && pipes === 0 && dials === 0 && fds <= env.baselineFds) return;
        if (Date.now() > end) {
          throw new Error(
            `not settled after ${timeoutMs} ms: ${size} table entries, ${pipes} pipes, ${dials} dials, ${fds} fds (baseline ${env.baselineFds}: ${baselineList.join(' ')}; now: ${describeFds().join(' ')})`,
          );
        }
        await sleep(50);
      }
    },
    async close() {
      await synfin.shutdown('test done');
      ns.destroy();
    },
  };
  return env;
}

/**
 * GET without keep-alive (a fresh connection closed after the response), so the API calls of a
 * test leave no socket open that the fd count would see.
 */
export function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(what: string, fn: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = await fn();
  while (!ok(last)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(last)}`);
    await sleep(25);
    last = await fn();
  }
  return last;
}

/** A TCP server on 127.0.0.1 with a behaviour; returns it with its port. */
export async function listen(onConn: (s: net.Socket) => void): Promise<{ server: net.Server; port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port, sockets };
}

export async function closeServer(srv: { server: net.Server; sockets: Set<net.Socket> } | undefined): Promise<void> {
  if (srv === undefined) return;
  for (const s of srv.sockets) s.destroy();
  await new Promise<void>((r) => srv.server.close(() => r()));
}

/** A port on 127.0.0.1 nothing listens on. */
export async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

/** Parse the last JSON line a peer printed. */
export function lastJson<T>(stdout: string): T {
  const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  const last = lines.at(-1);
  if (last === undefined) throw new Error(`no JSON line in output: ${JSON.stringify(stdout)}`);
  return JSON.parse(last) as T;
}

/** Lines a child process prints on stdout, as they arrive. */
export function collectLines(child: { stdout: NodeJS.ReadableStream | null }): string[] {
  const lines: string[] = [];
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    for (const p of parts) if (p.length > 0) lines.push(p);
  });
  return lines;
}
