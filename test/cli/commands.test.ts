/**
 * The commands for a pod: `synfin check`, `synfin version`, `synfin connections`, `synfin --help`
 * and the exit codes (0 done, 1 failed at run time, 2 bad usage), run as a user runs them: the
 * built bin/synfin.js, against a real synfin running in a network namespace of its own.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, printedPort, stdoutOf, untilTrue } from '../helpers/children.js';
import { NetNs, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/synfin.js');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };

function synfin(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** bin/synfin.js in the background (for servers that answer from this process). */
function spawnSynfin(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function expectOneLine(r: { code: number | null; stderr: string }, code: number, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^synfin: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/); // no stack trace
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-cli-'));
}, 120_000);
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('synfin --help', () => {
  it("lists run's options with their defaults and SYNFIN_* names, the test aid under its own heading, and the exit codes", () => {
    const r = synfin(['--help']);
    expect(r.code).toBe(0);
    const text = r.stdout;
    for (const cmd of ['run [options]', 'check [options]', 'connections [options]', 'version', 'demo']) expect(text).toContain(cmd);
    expect(text).toMatch(/--listen <HOST:PORT>\s+HTTP server for metrics and the API \(default\s+127\.0\.0\.1:9477\)\s+\[SYNFIN_LISTEN\]/);
    expect(text).toMatch(/--msl <SECONDS>[^[]*\(default 30\)\s+\[SYNFIN_MSL\]/);
    expect(text).toMatch(/--config <FILE>[^[]*\[SYNFIN_CONFIG\]/);
    const testing = text.indexOf('Testing aid');
    expect(testing).toBeGreaterThan(0);
    expect(text.indexOf('--impair')).toBeGreaterThan(testing);
    expect(text.indexOf('--max-connections')).toBeLessThan(testing);
    expect(text).toMatch(/Exit codes: 0 .*; 1 .*\n?.*; 2 bad usage/s);
  });
});

describe('synfin check', () => {
  it('valid options: one summary line on stdout, exit 0, and no device made', () => {
    const tun = uniqueIfName('sfck');
    const r = synfin(['check', '--tun', tun, '--listen', '[::]:9480', '--deny', '169.254.169.254/32']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toMatch(new RegExp(`^synfin: configuration ok: tun ${tun}, listen \\[::\\]:9480, .*1 deny`));
    expect(spawnSync('ip', ['link', 'show', tun]).status).not.toBe(0);
  });

  it('a bad option, variable or config file is one line and exit 2', () => {
    expectOneLine(synfin(['check', '--mtu', '12']), 2, /--mtu: 12 is out of range/);
    expectOneLine(synfin(['check'], { SYNFIN_SYN_BACKLOG: 'lots' }), 2, /SYNFIN_SYN_BACKLOG: "lots" is not a number/);
    const bad = path.join(tmp, 'bad.yaml');
    fs.writeFileSync(bad, 'msl: 1\nfrobnicate: 2\n');
    expectOneLine(synfin(['check', '--config', bad]), 2, /unknown option "frobnicate"/);
  });

  it('SYNFIN_CONFIG names the config file; --config wins over it, flags over both', () => {
    const a = path.join(tmp, 'a.yaml');
    const b = path.join(tmp, 'b.yaml');
    fs.writeFileSync(a, 'listen: "127.0.0.1:9601"\nlog-level: warn\n');
    fs.writeFileSync(b, 'listen: "127.0.0.1:9602"\n');
    const fromEnv = synfin(['check'], { SYNFIN_CONFIG: a });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    expect(fromEnv.stdout).toContain(`(${a})`);
    expect(fromEnv.stdout).toContain('listen 127.0.0.1:9601');
    expect(fromEnv.stdout).toContain('log-level warn');
    const flagWins = synfin(['check', '--config', b], { SYNFIN_CONFIG: a });
    expect(flagWins.stdout).toContain('listen 127.0.0.1:9602');
    expect(flagWins.stdout).not.toContain('log-level warn');
    expect(synfin(['check', '--listen', '127.0.0.1:9603'], { SYNFIN_CONFIG: a }).stdout).toContain('listen 127.0.0.1:9603');
    expectOneLine(synfin(['check'], { SYNFIN_CONFIG: path.join(tmp, 'missing.yaml') }), 2, /cannot read .*missing\.yaml \(ENOENT\)/);
  });
});

describe('synfin version', () => {
  it('prints the version, Node.js and that the addon loads', () => {
    const r = synfin(['version']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`synfin ${PKG.version}`);
    expect(lines[1]).toBe(`node ${process.version}`);
    expect(lines[2]).toMatch(/^addon ok \(.*build\/Release\/synfin\.node\)$/);
  });
});

describe('exit codes', () => {
  // A fault nobody planned for, injected from outside: writing check's summary throws.
  const inject = () => {
    const file = path.join(tmp, 'fault.cjs');
    fs.writeFileSync(
      file,
      `const w = process.stdout.write.bind(process.stdout);
       process.stdout.write = (s, ...rest) => { if (String(s).startsWith('synfin: configuration ok')) throw new TypeError('injected fault'); return w(s, ...rest); };`,
    );
    return { NODE_OPTIONS: `--require ${file}` };
  };

  it('an unexpected error is one line on stderr and exit 1; the stack is logged at debug only', () => {
    const r = synfin(['check'], inject());
    expectOneLine(r, 1, /^synfin: unexpected error: injected fault \(--log-level debug logs the stack\)$/);
    expect(r.stdout).toBe('');

    const debug = synfin(['check', '--log-level', 'debug'], inject());
    expectOneLine(debug, 1, /^synfin: unexpected error: injected fault$/);
    const logged = debug.stdout.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; err?: { type: string; stack: string } });
    expect(logged).toHaveLength(1);
    expect(logged[0]!.level).toBe(20);
    expect(logged[0]!.msg).toBe('unexpected error');
    expect(logged[0]!.err?.type).toBe('TypeError');
    expect(logged[0]!.err?.stack).toMatch(/injected fault\n\s+at /);
    expect(synfin(['check'], { ...inject(), SYNFIN_LOG_LEVEL: 'debug' }).stdout).toMatch(/"msg":"unexpected error"/);
  });

  it('a mistyped command is named as unknown, exit 2', () => {
    expectOneLine(synfin(['conections']), 2, /unknown command "conections" \(commands: run, check, connections, version, demo; see synfin --help\)/);
    expectOneLine(synfin(['run', 'extra']), 2, /too many arguments for 'run'/);
  });

  it('bad usage of connections is exit 2; an unreachable synfin is exit 1, one line each', async () => {
    expectOneLine(synfin(['connections', '--waiting-on', 'nobody']), 2, /--waiting-on: "nobody" is not app or upstream/);
    expectOneLine(synfin(['connections', '--state', 'SLEEPING']), 2, /--state: "SLEEPING" is not one of/);
    expectOneLine(synfin(['connections', '--watch', '0']), 2, /--watch: 0 must be a number of seconds > 0/);
    expectOneLine(synfin(['connections', '--listen', 'nowhere']), 2, /--listen: "nowhere" needs a port/);
    // A port nothing listens on.
    const free = http.createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const port = (free.address() as AddressInfo).port;
    await new Promise<void>((r) => free.close(() => r()));
    expectOneLine(synfin(['connections', '--listen', `127.0.0.1:${port}`]), 1, new RegExp(`cannot reach synfin at http://127.0.0.1:${port} \\(ECONNREFUSED\\)`));
    expectOneLine(synfin(['connections'], { SYNFIN_LISTEN: `127.0.0.1:${port}` }), 1, /ECONNREFUSED/);
  });
});

/** A row as the API serves it. */
function apiRow(id: number, over: Record<string, unknown> = {}) {
  return {
    id,
    client: `198.18.0.1:${40000 + id}`,
    destination: '198.18.1.1:443',
    upstream: null,
    state: 'ESTABLISHED',
    appState: 'ESTABLISHED',
    appStateSource: 'kernel',
    upstreamState: 'ESTABLISHED',
    waitingOn: null,
    ageSeconds: 75.5,
    idleSeconds: 0.25,
    bytesIn: 100 * id,
    bytesOut: 7 * id,
    ...over,
  };
}

describe('synfin connections against an API that pages', () => {
  // The API's protocol (src/http/app.ts): pages of `limit` rows, `next` a cursor for the following
  // page or null. A recorded server checks what the command asks and that it follows `next`.
  it('follows next until null, passes the filters on, and shows SERVICE and PROCESS when rows carry them', async () => {
    const asked: URLSearchParams[] = [];
    const server = http.createServer((req, res) => {
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      asked.push(q);
      const page =
        q.get('cursor') === null
          ? { count: 2, addresses: 'shown', connections: [apiRow(1, { service: 'payments', appProcess: { pid: 4242, command: 'java', fd: 17 } }), apiRow(2, { service: 'payments' })], next: 'abcdef012' }
          : { count: 1, addresses: 'shown', connections: [apiRow(9, { service: 'payments', waitingOn: 'app', state: 'FIN_WAIT_2', appState: 'CLOSE_WAIT', upstreamState: null, appProcess: null })], next: null };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(page));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawnSynfin(['connections', '--listen', `127.0.0.1:${port}`, '--service', 'payments', '--waiting-on', 'app', '--state', 'fin_wait_2']);
        let stdout = '';
        let stderr = '';
        child.stdout!.on('data', (d) => (stdout += d));
        child.stderr!.on('data', (d) => (stderr += d));
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
      expect(r.code, r.stderr).toBe(0);
      expect(asked).toHaveLength(2);
      for (const q of asked) {
        expect(q.get('service')).toBe('payments');
        expect(q.get('waitingOn')).toBe('app');
        expect(q.get('state')).toBe('FIN_WAIT_2');
        expect(q.get('limit')).toBe('1000');
      }
      expect(asked[0]!.get('cursor')).toBeNull();
      expect(asked[1]!.get('cursor')).toBe('abcdef012');
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines).toHaveLength(4);
      expect(lines[0]!.split(/\s+/)).toEqual(['ID', 'STATE', 'APP', 'UPSTREAM', 'WAITING', 'CLIENT', 'DESTINATION', 'AGE', 'IDLE', 'IN', 'OUT', 'SERVICE', 'PROCESS']);
      expect(lines[1]!.trim().split(/\s+/)).toEqual(['1', 'ESTABLISHED', 'ESTABLISHED', 'ESTABLISHED', '-', '198.18.0.1:40001', '198.18.1.1:443', '1m15s', '0.3s', '100', '7', 'payments', 'java[4242]']);
      expect(lines[3]!.trim().split(/\s+/)).toEqual(['9', 'FIN_WAIT_2', 'CLOSE_WAIT', '-', 'app', '198.18.0.1:40009', '198.18.1.1:443', '1m15s', '0.3s', '900', '63', 'payments', '-']);
      // Aligned: every column starts at the same offset on every line.
      const start = (line: string, col: number) => [...line.matchAll(/\S+/g)][col]!.index;
      for (const col of [1, 5, 11]) expect(new Set(lines.map((l) => start(l, col))).size, `column ${col}`).toBe(1);
    } finally {
      server.close();
    }
  });

  it('an API error is shown as one line and exit 1', async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'querystring must NOT have additional properties', statusCode: 400 }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawnSynfin(['connections', '--listen', `127.0.0.1:${port}`]);
        let stderr = '';
        child.stderr!.on('data', (d) => (stderr += d));
        child.on('exit', (code) => resolve({ code, stderr }));
      });
      expectOneLine(r, 1, /synfin answered HTTP 400: querystring must NOT have additional properties/);
    } finally {
      server.close();
    }
  });
});

/** In the namespace: a server on 127.0.0.1 that echoes, and closes its side on 'q'. Prints its port. */
const SERVER = `
const net = require('node:net');
const srv = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('data', (d) => (String(d).includes('q') ? s.end() : s.write(d)));
  s.on('error', () => {});
});
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
`;

/**
 * In the namespace: OPEN connections through synfin that stay open, and one whose server closes
 * while the app never does (synfin then waits on the app in FIN_WAIT_2). Prints 'ready'.
 */
const CLIENTS = `
const net = require('node:net');
const [host, port, open] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
let up = 0;
const done = () => { if (++up === open + 1) console.log('ready'); };
for (let i = 0; i < open; i++) {
  const s = net.connect({ host, port }, () => s.write('hello'));
  s.once('data', done);
  s.on('error', () => {});
}
const leak = net.connect({ host, port, allowHalfOpen: true }, () => leak.write('q'));
leak.on('end', done);
leak.on('data', () => {});
leak.on('error', () => {});
setInterval(() => {}, 1e9);
`;

const OPEN = 3;
const LISTEN = '[::]:9477';

describeIfTun('synfin connections and synfin_ephemeral_ports against a running synfin', () => {
  let ns: NetNs;
  let synfinOut: () => string;
  const children: ChildProcess[] = [];

  const until = untilTrue;
  const output = stdoutOf;
  /** `synfin ARGS` in the namespace, as `kubectl exec` into the pod would run it. */
  const inNs = (args: string[], env: NodeJS.ProcessEnv = {}) => ns.exec(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
  const curl = async (url: string, ...opts: string[]) => ns.exec('curl', ['-sS', '--max-time', '5', ...opts, url]);
  /** Table rows as arrays of cells (header dropped). */
  const rowsOf = (text: string) => text.trimEnd().split('\n').slice(1).map((l) => l.trim().split(/\s+/));

  beforeAll(async () => {
    ns = NetNs.create('cmds');
    // synfin's namespace gets a port range of its own: the gauge must say 1,000, not the host's.
    ns.execSync('sysctl', ['-qw', 'net.ipv4.ip_local_port_range=20000 20999']);
    const server = ns.spawn(process.execPath, ['-e', SERVER]);
    children.push(server);
    const port = await printedPort(server);

    const n = (process.pid % 200) + 20;
    const synfinChild = ns.spawn(process.execPath, [
      BIN, 'run', '--tun', uniqueIfName('sfcm'), '--address', `198.18.${n}.1/24`, '--listen', LISTEN,
      '--map', `198.18.${n}.0/24=127.0.0.1`, '--shutdown-grace', '0', '--max-event-streams', '0',
    ]);
    children.push(synfinChild);
    synfinOut = output(synfinChild);
    await until('synfin ready', () => synfinOut().includes('synfin ready'));

    const clients = ns.spawn(process.execPath, ['-e', CLIENTS, `198.18.${n}.2`, String(port), String(OPEN)]);
    children.push(clients);
    const clientsOut = output(clients);
    await until('the connections through synfin', () => clientsOut().includes('ready'));
  }, 60_000);

  afterAll(async () => {
    await killAll(children);
    ns?.destroy();
  });

  it('[::]:9477 is one dual-stack socket: IPv4 and IPv6 clients both reach synfin', async () => {
    const listening = ns.execSync('ss', ['-Hltn']).trim().split('\n').map((l) => l.trim().split(/\s+/)[3]).filter((a) => a?.endsWith(':9477'));
    expect(listening).toEqual(['*:9477']);
    expect((await curl('http://127.0.0.1:9477/healthz', '-4', '-o', '/dev/null', '-w', '%{http_code}')).stdout).toBe('200');
    expect((await curl('http://[::1]:9477/healthz', '-6', '-o', '/dev/null', '-w', '%{http_code}')).stdout).toBe('200');
  });

  it('prints the table the API serves, aligned like ss, and reaches a [::] listener', async () => {
    const api = JSON.parse((await curl('http://127.0.0.1:9477/api/connections')).stdout) as { connections: Array<{ id: number; state: string; client: string; destination: string; waitingOn: string | null }> };
    expect(api.connections).toHaveLength(OPEN + 1);
    const r = await inNs(['connections', '--listen', LISTEN]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const header = r.stdout.split('\n')[0]!.split(/\s+/);
    // Rows carry their service (`other` here: no --service), so the table shows it.
    expect(header).toEqual(['ID', 'STATE', 'APP', 'UPSTREAM', 'WAITING', 'CLIENT', 'DESTINATION', 'AGE', 'IDLE', 'IN', 'OUT', 'SERVICE']);
    const rows = rowsOf(r.stdout);
    expect(rows.map((c) => Number(c[0]))).toEqual(api.connections.map((c) => c.id));
    for (const [i, c] of api.connections.entries()) {
      expect(rows[i]![1]).toBe(c.state);
      expect(rows[i]![4]).toBe(c.waitingOn ?? '-');
      expect(rows[i]![5]).toBe(c.client);
      expect(rows[i]![6]).toBe(c.destination);
    }
    // The same from SYNFIN_LISTEN, as in the image (no --listen).
    const fromEnv = await inNs(['connections'], { SYNFIN_LISTEN: LISTEN });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    expect(rowsOf(fromEnv.stdout).map((c) => c[0])).toEqual(rows.map((c) => c[0]));
  });

  it('--waiting-on app and --state filter through the API', async () => {
    const waiting = await inNs(['connections', '--listen', LISTEN, '--waiting-on', 'app']);
    expect(waiting.code, waiting.stderr).toBe(0);
    const rows = rowsOf(waiting.stdout);
    expect(rows).toHaveLength(1);
    expect(rows[0]![1]).toBe('FIN_WAIT_2');
    expect(rows[0]![2]!.replace('*', '')).toBe('CLOSE_WAIT');
    expect(rows[0]![4]).toBe('app');
    const established = await inNs(['connections', '--listen', LISTEN, '--state', 'established']);
    expect(established.code, established.stderr).toBe(0);
    expect(rowsOf(established.stdout).map((c) => c[1])).toEqual(Array(OPEN).fill('ESTABLISHED'));
  });

  it('--watch refreshes until Ctrl-C, then exits 0', async () => {
    const child = ns.spawn(process.execPath, [BIN, 'connections', '--listen', LISTEN, '--watch', '0.3']);
    children.push(child);
    const out = output(child);
    await until('three refreshes', () => (out().match(/^every 0\.3s: /gm) ?? []).length >= 3, 10_000);
    expect(out()).toMatch(new RegExp(`^${OPEN + 1} connections$`, 'm'));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });

  it("a 5xx answer is a line in synfin's log (here /api/events refused with --max-event-streams 0)", async () => {
    expect((await curl('http://127.0.0.1:9477/api/events', '-o', '/dev/null', '-w', '%{http_code}')).stdout).toBe('503');
    await until('the log line', () => synfinOut().includes('"statusCode":503'), 5000);
    const line = synfinOut().split('\n').find((l) => l.includes('"statusCode":503'))!;
    expect(JSON.parse(line)).toMatchObject({ level: 40, name: 'synfin', component: 'http', statusCode: 503, msg: 'HTTP 503', req: { method: 'GET', url: '/api/events' } });
  });

  it("synfin_ephemeral_ports is the size of the namespace's ip_local_port_range, read at each scrape", async () => {
    const scrape = async () => metricValue((await curl('http://127.0.0.1:9477/metrics')).stdout, 'synfin_ephemeral_ports');
    expect(await scrape()).toBe(1000);
    ns.execSync('sysctl', ['-qw', 'net.ipv4.ip_local_port_range=30000 30099']);
    expect(await scrape()).toBe(100);
    // The host's range is not what synfin reports.
    const host = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    expect(host[1]! - host[0]! + 1).not.toBe(100);
  });
});
