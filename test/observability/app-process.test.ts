/**
 * appProcess: which process and file descriptor hold the app's socket. Ground truth is `ss -tnp`
 * on the same sockets (its users:(("python3",pid=N,fd=M))), with the real kernel as the app's
 * peer: synfin runs in the app's network namespace (the sidecar case), so sock_diag lists the
 * app's sockets, and a Python client leaks connections the destination closed (CLOSE_WAIT).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SocketOwners, type AppProcessSource } from '../../src/observability/app-process.js';
import { KernelSockets } from '../../src/observability/kernel-sockets.js';
import { loadAddon, type NativeSocketOwners } from '../../src/native/addon.js';
import { destroyAllNetns, NetNs, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { startSynfinEnv } from '../helpers/synfin-env.js';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/synfin.js');
/** Debian's python3 (pyenv's shim would be a shell script in between). */
const PYTHON = '/usr/bin/python3';
const NOBODY = '65534';

/**
 * Opens N connections, waits until the destination has closed every one (EOF: the app's sockets
 * are in CLOSE_WAIT), prints its pid and each socket's fd and local address, and never closes
 * them; exits when stdin closes.
 */
const LEAKER = `
import json, os, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
for s in socks:
    while s.recv(4096):
        pass
print(json.dumps({'pid': os.getpid(), 'sockets': [{'fd': s.fileno(), 'local': '%s:%d' % s.getsockname()} for s in socks]}), flush=True)
sys.stdin.read()
`;

/** Accepts and closes at once: every connection waits on the app. */
const CLOSER = `
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', int(sys.argv[1])))
srv.listen(256)
print('ready', flush=True)
while True:
    c, _ = srv.accept()
    c.close()
`;

interface Row {
  id: number;
  client: string;
  waitingOn: string | null;
  appState: string;
  appProcess: { pid: number; command: string; fd: number } | null;
  appProcessSource: AppProcessSource;
}

interface Leak {
  pid: number;
  sockets: Array<{ fd: number; local: string }>;
}

function lines(child: ChildProcess): { text: () => string; wait: (what: string, ms?: number) => Promise<string> } {
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  return {
    text: () => out,
    async wait(what, ms = 20_000) {
      const end = Date.now() + ms;
      while (!out.includes(what)) {
        if (Date.now() > end) throw new Error(`timed out waiting for "${what}": ${out.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return out;
    },
  };
}

async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** `ss -tnp` of the sockets from `local` to `dst` in `ns`: local address → the first user's command, pid and fd. */
function ssUsers(ns: NetNs, dst: string): Map<string, { command: string; pid: number; fd: number }> {
  const out = ns.execSync('ss', ['-Htnp', 'dst', dst]);
  const users = new Map<string, { command: string; pid: number; fd: number }>();
  for (const line of out.split('\n')) {
    const m = /users:\(\("([^"]*)",pid=(\d+),fd=(\d+)\)/.exec(line);
    const local = line.trim().split(/\s+/)[3];
    if (m !== null && local !== undefined) users.set(local, { command: m[1]!, pid: Number(m[2]), fd: Number(m[3]) });
  }
  return users;
}

describe('SocketOwners with an injected /proc', () => {
  let root: string;
  beforeAll(() => {
    // Two processes: 123 holds socket 999 on fd 7, 456 holds a file and socket 555 on fd 3.
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-proc-'));
    for (const [pid, comm, fds] of [
      ['123', 'leaky-app\n', { '0': '/dev/null', '7': 'socket:[999]' }],
      ['456', 'worker\n', { '1': '/tmp/x', '3': 'socket:[555]' }],
    ] as const) {
      fs.mkdirSync(path.join(root, pid, 'fd'), { recursive: true });
      fs.writeFileSync(path.join(root, pid, 'comm'), comm);
      for (const [fd, target] of Object.entries(fds)) fs.symlinkSync(target, path.join(root, pid, 'fd', fd));
    }
    fs.mkdirSync(path.join(root, 'self'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('names the pid, command and fd of each socket inode; one held by no process is not_visible', async () => {
    let now = 0;
    const owners = new SocketOwners(() => now, { procRoot: root });
    expect(owners.lookup(999).appProcessSource).toBe('pending');
    await owners.resolve([999, 555, 4242]);
    expect(owners.lookup(999)).toEqual({ appProcess: { pid: 123, command: 'leaky-app', fd: 7 }, appProcessSource: 'kernel' });
    expect(owners.lookup(555)).toEqual({ appProcess: { pid: 456, command: 'worker', fd: 3 }, appProcessSource: 'kernel' });
    expect(owners.lookup(4242)).toEqual({ appProcess: null, appProcessSource: 'not_visible' });
    expect(owners.lookup(-1).appProcessSource).toBe('no_socket');
    expect(owners.lookup(0).appProcessSource).toBe('inferred');
    expect(owners.fullWalks).toBe(1);
    now += 1000;
    // Cached by inode: asking again reads nothing.
    await owners.resolve([999, 555]);
    expect(owners.fullWalks + owners.ownerWalks).toBe(1);
  });

  it('the walk of every process names the processes holding sockets, and a socket opened after it is found in their tables alone', async () => {
    let now = 0;
    const owners = new SocketOwners(() => now, { procRoot: root });
    await owners.resolve([999]);
    expect(owners.lastWalk).toMatchObject({ full: true, processes: 2 });
    // 456's socket was not asked for, but 456 holds a socket: within the interval it is read alone.
    now = 1000;
    await owners.resolve([555]);
    expect(owners.fullWalks).toBe(1);
    expect(owners.ownerWalks).toBe(1);
    expect(owners.lookup(555).appProcess).toEqual({ pid: 456, command: 'worker', fd: 3 });
  });

  it('a walk of every process runs at most once per interval; a new socket of a known owner is found by reading only the known owners', async () => {
    let now = 0;
    const calls: Array<Int32Array | null> = [];
    const fake = (_root: string, inodes: Float64Array, pids: Int32Array | null): Promise<NativeSocketOwners> => {
      calls.push(pids);
      const n = inodes.length;
      const r: NativeSocketOwners = { pid: new Int32Array(n), fd: new Int32Array(n).fill(-1), command: new Array(n).fill(null), processes: 3, denied: 0, fds: 10, socketHolders: new Int32Array(pids === null ? [7, 8] : []) };
      inodes.forEach((inode, i) => {
        if (inode >= 100 && inode < 200) {
          r.pid[i] = 7;
          r.fd[i] = inode - 100;
          r.command[i] = 'app';
        }
      });
      return Promise.resolve(r);
    };
    const owners = new SocketOwners(() => now, { find: fake, minWalkIntervalMs: 5000 });
    await owners.resolve([101, 900]);
    expect(calls).toEqual([null]);
    expect(owners.lookup(900).appProcessSource).toBe('not_visible');
    now = 1000;
    await owners.resolve([102, 900]);
    // Only pid 7's table was read; 900 keeps its answer until a full walk is due again.
    expect(calls.length).toBe(2);
    // The known owner, and the processes that held sockets at the full walk.
    expect(Array.from(calls[1]!).sort()).toEqual([7, 8]);
    expect(owners.lookup(102).appProcess).toEqual({ pid: 7, command: 'app', fd: 2 });
    now = 2000;
    await owners.resolve([901]);
    expect(owners.lookup(901).appProcessSource).toBe('pending');
    expect(owners.fullWalks).toBe(1);
    now = 6000;
    await owners.resolve([901, 900]);
    expect(owners.fullWalks).toBe(2);
    expect(owners.lookup(901).appProcessSource).toBe('not_visible');
  });

  it('a socket found in no readable fd table while some could not be read is not_permitted', async () => {
    const fake = (_root: string, inodes: Float64Array): Promise<NativeSocketOwners> =>
      Promise.resolve({ pid: new Int32Array(inodes.length), fd: new Int32Array(inodes.length).fill(-1), command: [null], processes: 5, denied: 2, fds: 50, socketHolders: new Int32Array(0) });
    const owners = new SocketOwners(() => 0, { find: fake });
    await owners.resolve([77]);
    expect(owners.lookup(77)).toEqual({ appProcess: null, appProcessSource: 'not_permitted' });
  });

  it('no /proc to walk: the sockets are not_visible, and the error is kept', async () => {
    const owners = new SocketOwners(() => 0, { procRoot: path.join(root, 'nowhere') });
    await owners.resolve([999]);
    expect(owners.lookup(999)).toEqual({ appProcess: null, appProcessSource: 'not_visible' });
    expect(owners.lastError?.message).toMatch(/nowhere/);
  });

  it('concurrent callers share one walk', async () => {
    let walks = 0;
    const fake = (_root: string, inodes: Float64Array): Promise<NativeSocketOwners> => {
      walks++;
      return new Promise((r) => setTimeout(() => r({ pid: new Int32Array(inodes.length).fill(9), fd: new Int32Array(inodes.length).fill(4), command: new Array(inodes.length).fill('x'), processes: 1, denied: 0, fds: 1, socketHolders: new Int32Array([9]) }), 20));
    };
    const owners = new SocketOwners(() => 0, { find: fake });
    await Promise.all([owners.resolve([5]), owners.resolve([5]), owners.resolve([5])]);
    expect(walks).toBe(1);
    expect(owners.lookup(5).appProcess).toEqual({ pid: 9, command: 'x', fd: 4 });
  });
});

describe.each([
  { source: 'sock_diag', forceProc: false },
  { source: 'proc', forceProc: true },
])("the kernel's socket table names each socket's inode ($source)", ({ source, forceProc }) => {
  it('inodeOf(local, remote) is the inode /proc/self/fd links to for both ends of a loopback connection; -1 for no socket', async () => {
    const net = await import('node:net');
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const accepted = new Promise<import('node:net').Socket>((r) => server.once('connection', r));
    const client = net.connect(port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    const peer = await accepted;
    try {
      const inodeOfFd = (s: import('node:net').Socket): number =>
        Number(/socket:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/self/fd/${(s as unknown as { _handle: { fd: number } })._handle.fd}`))![1]);
      const sockets = new KernelSockets(() => 0, { forceProc });
      await sockets.refresh();
      expect(sockets.source).toBe(source);
      const lp = client.localPort!;
      expect(sockets.inodeOfAddresses('127.0.0.1', lp, '127.0.0.1', port)).toBe(inodeOfFd(client));
      expect(sockets.inodeOfAddresses('127.0.0.1', port, '127.0.0.1', lp)).toBe(inodeOfFd(peer));
      expect(sockets.inodeOfAddresses('127.0.0.1', 1, '127.0.0.1', 2)).toBe(-1);
    } finally {
      client.destroy();
      peer.destroy();
      server.close();
    }
  });
});

describe('the walk of /proc is off the event loop', () => {
  const opened: number[] = [];
  afterEach(() => {
    for (const fd of opened.splice(0)) fs.closeSync(fd);
  });

  it('with 2,000 more open fds, a full walk finds the socket and keeps the event loop busy for less than 10 ms', async () => {
    for (let i = 0; i < 2000; i++) opened.push(fs.openSync('/dev/null', 'r'));
    const net = await import('node:net');
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
      const inode = Number(/socket:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))![1]);
      loadAddon(); // loading it is not the walk's cost
      let now = 0;
      const owners = new SocketOwners(() => now, { minWalkIntervalMs: 1000 });
      // The event loop's busy time while a walk runs (event-loop utilization counts time in
      // callbacks, not time waiting in epoll): the walk itself is in the thread pool. Not the
      // loop's delay, which on a loaded machine is the scheduler's as much as ours. The least of
      // three walks: the test runner's own work lands in some of them.
      let busy = Infinity;
      let wall = 0;
      for (let i = 0; i < 3; i++) {
        now += 1000;
        const before = performance.eventLoopUtilization();
        const t0 = performance.now();
        // A socket that is nowhere, too: the walk reads every fd table it can.
        await owners.resolve([inode, 1]);
        const b = performance.eventLoopUtilization(before).active;
        if (b < busy) [busy, wall] = [b, performance.now() - t0];
      }
      expect(owners.fullWalks).toBe(3);
      expect(owners.lastWalk!.fds).toBeGreaterThanOrEqual(2000);
      expect(owners.lookup(inode).appProcess).toEqual({ pid: process.pid, command: fs.readFileSync('/proc/self/comm', 'utf8').trim(), fd });
      expect(busy, `loop busy ${busy.toFixed(2)} ms of a ${wall.toFixed(2)} ms walk`).toBeLessThan(10);
    } finally {
      server.close();
    }
  });
});

describeIfTun('appProcess against ss -tnp (synfin in the app network namespace)', () => {
  let ns: NetNs;
  let closer: ChildProcess;
  const leakers: ChildProcess[] = [];
  let synfin: ChildProcess | undefined;
  /** unshare(1) ignores SIGTERM while it waits for its child (--kill-child hands a SIGKILL on). */
  let synfinStop: NodeJS.Signals = 'SIGTERM';
  const n = ((process.pid * 7) % 200) + 20;
  const tunAddr = `198.19.${n}.1`;
  const destAddr = `198.19.${n}.2`;
  const destPort = 8000;
  const api = `http://127.0.0.1:9477`;

  /** synfin run in the namespace (as root: it gives up every capability once the device is ready). */
  async function startSynfin(extra: string[] = [], wrapper: string[] = []): Promise<void> {
    const tun = uniqueIfName('sfap');
    const argv = [...wrapper, process.execPath, BIN, 'run', '--tun', tun, '--address', `${tunAddr}/24`, '--map', `${destAddr}/32=127.0.0.1`, '--listen', '127.0.0.1:9477', '--shutdown-grace', '0', ...extra];
    synfin = ns.spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    synfinStop = wrapper.length > 0 ? 'SIGKILL' : 'SIGTERM';
    await lines(synfin).wait('synfin ready');
  }

  /**
   * A leaking client in the namespace: as `asUser`, or as root without capabilities, like synfin
   * once started (reading a process's fd links also wants its capabilities to be a subset of ours).
   */
  async function leak(count: number, asUser?: string): Promise<Leak> {
    const who = asUser !== undefined ? [`--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups'] : ['--inh-caps=-all', '--bounding-set=-all'];
    const argv = ['setpriv', ...who, PYTHON, '-c', LEAKER, destAddr, String(destPort), String(count)];
    const child = ns.spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    leakers.push(child);
    const out = await lines(child).wait('"sockets"');
    return JSON.parse(out.split('\n').find((l) => l.includes('"sockets"'))!) as Leak;
  }

  async function rows(query: string): Promise<Row[]> {
    const r = await ns.exec('curl', ['-sS', `${api}/api/connections?${query}`]);
    return (JSON.parse(r.stdout) as { connections: Row[] }).connections;
  }

  /** The rows of `leak`'s sockets once each has a settled appProcessSource (not pending). */
  async function settledRows(l: Leak, ms = 20_000): Promise<Map<string, Row>> {
    const locals = new Set(l.sockets.map((s) => s.local));
    const end = Date.now() + ms;
    for (;;) {
      const byClient = new Map((await rows('waitingOn=app')).filter((r) => locals.has(r.client)).map((r) => [r.client, r]));
      if (byClient.size === locals.size && [...byClient.values()].every((r) => r.appProcessSource !== 'pending')) return byClient;
      if (Date.now() > end) throw new Error(`rows never settled: ${JSON.stringify([...byClient.values()]).slice(0, 1000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async function endLeakers(): Promise<void> {
    for (const c of leakers.splice(0)) {
      c.stdin?.end();
      await stop(c, 'SIGKILL');
    }
  }

  beforeAll(async () => {
    ns = NetNs.create('proc');
    closer = ns.spawn(PYTHON, ['-c', CLOSER, String(destPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
    await lines(closer).wait('ready');
  }, 30_000);

  afterEach(async () => {
    await endLeakers();
    await stop(synfin, synfinStop);
    synfin = undefined;
  });

  afterAll(async () => {
    await stop(closer, 'SIGKILL');
    ns?.destroy();
    destroyAllNetns();
  });

  it('a client that leaks 20 sockets: each row names the pid and fd that ss -tnp prints for it', async () => {
    await startSynfin();
    const l = await leak(20);
    const byClient = await settledRows(l);
    const ss = ssUsers(ns, `${destAddr}:${destPort}`);
    expect(ss.size).toBe(20);
    for (const s of l.sockets) {
      const row = byClient.get(s.local)!;
      const truth = ss.get(s.local)!;
      expect(row.appState).toBe('CLOSE_WAIT');
      expect(row.appProcessSource).toBe('kernel');
      expect(row.appProcess).toEqual({ pid: truth.pid, command: truth.command, fd: truth.fd });
      // And what the leaking process itself says.
      expect(row.appProcess).toEqual({ pid: l.pid, command: truth.command, fd: s.fd });
    }
  }, 60_000);

  it('an app of another uid, and synfin without capabilities (it gave up every one): not_permitted; keeping CAP_SYS_PTRACE alone is not enough; with CAP_DAC_READ_SEARCH too: named', async () => {
    await startSynfin();
    const l = await leak(3, NOBODY);
    const denied = await settledRows(l);
    for (const r of denied.values()) expect(r).toMatchObject({ appState: 'CLOSE_WAIT', appProcess: null, appProcessSource: 'not_permitted' });
    await endLeakers();
    await stop(synfin);

    // The fd links are a ptrace read check, but listing another uid's /proc/PID/fd is a
    // permission check on the directory (fs/proc/fd.c proc_fd_permission): both, as for ss -p.
    await startSynfin(['--keep-capability', 'sys_ptrace']);
    const half = await settledRows(await leak(2, NOBODY));
    for (const r of half.values()) expect(r.appProcessSource).toBe('not_permitted');
    await endLeakers();
    await stop(synfin);

    await startSynfin(['--keep-capability', 'sys_ptrace', '--keep-capability', 'dac_read_search']);
    const l2 = await leak(3, NOBODY);
    const named = await settledRows(l2);
    const ss = ssUsers(ns, `${destAddr}:${destPort}`);
    for (const s of l2.sockets) {
      expect(named.get(s.local)!.appProcessSource).toBe('kernel');
      expect(named.get(s.local)!.appProcess).toMatchObject({ pid: ss.get(s.local)!.pid, fd: ss.get(s.local)!.fd });
    }
  }, 90_000);

  it('synfin in a pid namespace of its own sees the socket but no process holding it: not_visible', async () => {
    await startSynfin([], ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child']);
    const l = await leak(2);
    const rowsNow = await settledRows(l);
    for (const r of rowsNow.values()) expect(r).toMatchObject({ appState: 'CLOSE_WAIT', appProcess: null, appProcessSource: 'not_visible' });
  }, 60_000);
});

describeIfTun('appProcess where the app is in another network namespace', () => {
  it('rows say no_socket: the app socket is not in synfin kernel table', async () => {
    const env = await startSynfinEnv({ mslSeconds: 1 });
    const server = (await import('node:net')).createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const child = env.ns.spawn(PYTHON, ['-c', LEAKER, env.serverAddr, String(port), '2'], { stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      await lines(child).wait('"sockets"');
      const body = await env.api<{ connections: Row[] }>('/api/connections?waitingOn=app');
      expect(body.connections.length).toBe(2);
      for (const r of body.connections) expect(r).toMatchObject({ appProcess: null, appProcessSource: 'no_socket' });
    } finally {
      child.stdin?.end();
      await stop(child, 'SIGKILL');
      server.close();
      await env.close();
      destroyAllNetns();
    }
  }, 60_000);
});

describeIfTun('appProcessOf: the app process for the flight recorder at close', () => {
  it('a connection waiting on the app is resolved in the background, and appProcessOf(id) still names its process in a closed handler', async () => {
    const { DEFAULT_CONFIG } = await import('../../src/config.js');
    const { createLogger } = await import('../../src/observability/log.js');
    const { startSynfin } = await import('../../src/runtime.js');
    const net = await import('node:net');
    // synfin in this process and the app in this network namespace, through a device of the
    // test's own with a subnet of its own: the app's sockets are in synfin's kernel table.
    const n = (process.pid % 20) + 230;
    const server = net.createServer((c) => c.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const config = {
      ...DEFAULT_CONFIG,
      tun: uniqueIfName('sfao'),
      addresses: [`198.19.${n}.1/24`],
      map: [`198.19.${n}.2/32=127.0.0.1`],
      listenHost: '127.0.0.1',
      listenPort: 0,
      logLevel: 'silent' as const,
      shutdownGraceSeconds: 0,
      // TIME-WAIT (synfin closes toward the app second here) ends soon.
      mslSeconds: 0.25,
    };
    const synfin = await startSynfin(config, { logger: createLogger('silent') });
    const child = (await import('node:child_process')).spawn(PYTHON, ['-c', LEAKER, `198.19.${n}.2`, String(port), '2'], { stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      const out = await lines(child).wait('"sockets"');
      const l = JSON.parse(out.split('\n').find((x) => x.includes('"sockets"'))!) as Leak;
      const registry = synfin.connections;
      await registry.watchWaitingOnApp();
      const ids = registry.rows().filter((r) => r.waitingOn === 'app').map((r) => r.id);
      expect(ids).toHaveLength(2);
      const named = ids.map((id) => registry.appProcessOf(id));
      expect(named.map((x) => x?.appProcess?.pid)).toEqual([l.pid, l.pid]);
      expect(named.map((x) => x?.appProcess?.fd).sort()).toEqual(l.sockets.map((s) => s.fd).sort());
      // The app exits: its sockets close, and so do synfin's connections.
      const atClose = new Map<number, unknown>();
      const unsubscribe = synfin.stack.events.subscribe({
        closed: (conn) => {
          atClose.set(conn.id, registry.appProcessOf(conn.id)?.appProcess ?? null);
        },
      });
      child.kill('SIGKILL');
      const end = Date.now() + 15_000;
      while (atClose.size < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      unsubscribe();
      expect(ids.map((id) => atClose.get(id))).toEqual(named.map((x) => x!.appProcess));
    } finally {
      await stop(child, 'SIGKILL');
      await synfin.shutdown('test done');
      server.close();
    }
  }, 60_000);
});

// `ss` and python3 are in the CI image (.ci/run); fail loudly rather than skip when they are not.
it('ss and python3 are installed', () => {
  expect(execFileSync('ss', ['-V'], { encoding: 'utf8' })).toMatch(/iproute2/);
  expect(fs.existsSync(PYTHON)).toBe(true);
});

it('--keep-capability keeps only what reading the app processes needs', async () => {
  const { resolveConfig } = await import('../../src/config.js');
  expect(resolveConfig({ 'keep-capability': ['sys_ptrace', 'dac_read_search'] }, {}).keepCapabilities).toEqual(['sys_ptrace', 'dac_read_search']);
  expect(resolveConfig({}, { SYNFIN_KEEP_CAPABILITY: 'sys_ptrace' }).keepCapabilities).toEqual(['sys_ptrace']);
  expect(() => resolveConfig({ 'keep-capability': ['net_admin'] }, {})).toThrow(/--keep-capability: "net_admin" is not one synfin keeps/);
});
