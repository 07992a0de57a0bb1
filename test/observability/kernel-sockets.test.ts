/**
 * The kernel socket table behind appState (sidecar) and synfin_upstream_sockets
 * (native/socket-table/socket-table.cc through src/observability/kernel-sockets.ts): real sockets of this
 * namespace read over sock_diag and, as the fallback, from /proc/net/tcp{,6}; the watched tuples
 * of synfin's upstream sockets counted by kernel state, forgotten after their memory runs out.
 */
import net from 'node:net';
import fs from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { KernelSockets } from '../../src/observability/kernel-sockets.js';
import { loadAddon } from '../../src/native/addon.js';
import { localEndpoint } from '../../src/observability/tcp-info.js';
import { parseAddress } from '../../src/wire/address.js';
import { ConnectionRegistry } from '../../src/observability/registry.js';
import { ManualClock } from '../../src/stack/clock.js';

async function pair(listenHost: string, connectHost: string): Promise<{ server: net.Server; client: net.Socket; accepted: net.Socket; port: number }> {
  const server = net.createServer();
  const acceptedP = new Promise<net.Socket>((r) => server.once('connection', r));
  await new Promise<void>((r) => server.listen(0, listenHost, r));
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, connectHost);
  await new Promise((r) => client.once('connect', r));
  return { server, client, accepted: await acceptedP, port };
}

async function closeAll(p: { server: net.Server; client: net.Socket; accepted: net.Socket }): Promise<void> {
  p.client.destroy();
  p.accepted.destroy();
  await new Promise((r) => p.server.close(r));
}

const hasIPv6 = fs.existsSync('/proc/net/tcp6') && fs.readFileSync('/proc/net/if_inet6', 'latin1').includes('lo');

describe.each([
  { source: 'sock_diag', forceProc: false },
  { source: 'proc', forceProc: true },
])('KernelSockets from $source', ({ source, forceProc }) => {
  it('finds both ends of a real loopback connection, ESTABLISHED', async () => {
    const p = await pair('127.0.0.1', '127.0.0.1');
    try {
      const sockets = new KernelSockets(() => 0, { forceProc });
      expect(sockets.size).toBe(0);
      expect(sockets.source).toBe('none');
      await sockets.fresh();
      expect(sockets.lastError).toBeNull();
      expect(sockets.source).toBe(source);
      expect(sockets.size).toBeGreaterThanOrEqual(2);
      const cp = p.client.localPort!;
      expect(sockets.stateOfAddresses('127.0.0.1', cp, '127.0.0.1', p.port)).toBe('ESTABLISHED');
      expect(sockets.stateOfAddresses('127.0.0.1', p.port, '127.0.0.1', cp)).toBe('ESTABLISHED');
      // The reverse of a tuple, or another port, is another socket.
      expect(sockets.stateOfAddresses('127.0.0.1', cp + 1 === p.port ? cp + 2 : cp + 1, '127.0.0.1', p.port)).toBeUndefined();
      expect(sockets.stateOfAddresses('not an address', 1, '127.0.0.1', 2)).toBeUndefined();
    } finally {
      await closeAll(p);
    }
  });

  it('finds every one of 300 connections (600 sockets: the table grows and rehashes while it is read)', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const clients: net.Socket[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const c = net.connect(port, '127.0.0.1');
        clients.push(c);
        await new Promise((r) => c.once('connect', r));
      }
      const sockets = new KernelSockets(() => 0, { forceProc });
      await sockets.fresh();
      let found = 0;
      for (const c of clients) {
        if (sockets.stateOfAddresses('127.0.0.1', c.localPort!, '127.0.0.1', port) === 'ESTABLISHED') found++;
      }
      expect(found).toBe(300);
    } finally {
      for (const c of clients) c.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('keys a dual-stack socket\'s IPv4-mapped endpoints as IPv4, both ways', async () => {
    if (!hasIPv6) return expect.fail('this machine has no IPv6 loopback');
    const p = await pair('::', '127.0.0.1');
    try {
      const sockets = new KernelSockets(() => 0, { forceProc });
      await sockets.fresh();
      // The accepted socket is AF_INET6 and Node reports it as ::ffff:127.0.0.1.
      expect(p.accepted.localAddress).toBe('::ffff:127.0.0.1');
      const cp = p.client.localPort!;
      expect(sockets.stateOfAddresses(p.accepted.localAddress!, p.port, p.accepted.remoteAddress!, cp)).toBe('ESTABLISHED');
      expect(sockets.stateOfAddresses('127.0.0.1', p.port, '127.0.0.1', cp)).toBe('ESTABLISHED');
    } finally {
      await closeAll(p);
    }
  });

  it('reads IPv6 sockets', async () => {
    if (!hasIPv6) return expect.fail('this machine has no IPv6 loopback');
    const p = await pair('::1', '::1');
    try {
      const sockets = new KernelSockets(() => 0, { forceProc });
      await sockets.fresh();
      expect(sockets.stateOfAddresses('::1', p.client.localPort!, '::1', p.port)).toBe('ESTABLISHED');
    } finally {
      await closeAll(p);
    }
  });

  it('localEndpoint reads a socket\'s local end as numbers, and watchEndpoints watches the same tuple as watch', async () => {
    for (const host of ['127.0.0.1', '::1']) {
      const p = await pair(host, host);
      const sockets = new KernelSockets(() => 0, { forceProc });
      try {
        const c = p.client;
        const fd = (c as unknown as { _handle: { fd: number } })._handle.fd;
        const local = new Uint32Array(6);
        expect(localEndpoint(fd, local)).toBe(true);
        const parsed = parseAddress(c.localAddress!)!;
        expect(local[0]).toBe(parsed.family);
        expect([...local.subarray(1, 5)]).toEqual([...parsed.words]);
        expect(local[5]).toBe(c.localPort);
        expect(localEndpoint(-1, local)).toBe(false);
        const remote = parseAddress(c.remoteAddress!)!;
        sockets.watchEndpoints(1, local, remote.words, c.remotePort!);
        await sockets.fresh();
        expect(sockets.counts()).toEqual({ ESTABLISHED: 1 });
        // The same tuple through the textual path is the same kernel socket: still one.
        expect(sockets.watch(2, c.localAddress!, c.localPort!, c.remoteAddress!, c.remotePort!)).toBe(true);
        await sockets.fresh();
        expect(sockets.counts()).toEqual({ ESTABLISHED: 1 });
        // And a tuple off by the port is not.
        sockets.watchEndpoints(3, local, remote.words, c.remotePort! + 1);
        await sockets.fresh();
        expect(sockets.counts()).toEqual({ ESTABLISHED: 1 });
      } finally {
        await closeAll(p);
      }
    }
  });

  it('counts a watched socket by kernel state: ESTABLISHED while open, TIME_WAIT after the active close', async () => {
    const p = await pair('127.0.0.1', '127.0.0.1');
    let t = 1000;
    const sockets = new KernelSockets(() => t, { forceProc, closedMemoryMs: 60_000 });
    try {
      const c = p.client;
      expect(sockets.watch(7, c.localAddress!, c.localPort!, c.remoteAddress!, c.remotePort!)).toBe(true);
      expect(sockets.watched).toBe(1);
      await sockets.fresh();
      expect(sockets.counts()).toEqual({ ESTABLISHED: 1 });
      // The client closes first, then the server: the client's socket holds TIME_WAIT.
      const closed = new Promise((r) => c.once('close', r));
      p.accepted.once('end', () => p.accepted.end());
      c.end();
      await closed;
      sockets.release(7);
      expect(sockets.watched).toBe(1);
      t += 10;
      await sockets.fresh();
      expect(sockets.counts()).toEqual({ TIME_WAIT: 1 });
      // After its memory runs out the tuple is forgotten, TIME_WAIT or not.
      t += 60_001;
      await sockets.fresh();
      expect(sockets.watched).toBe(0);
      expect(sockets.counts()).toEqual({});
    } finally {
      await closeAll(p);
    }
  });
});

describe('KernelSockets bookkeeping', () => {
  it('shares reads: a fresh-enough snapshot is reused, concurrent refreshes share one read', async () => {
    let t = 0;
    const sockets = new KernelSockets(() => t);
    expect(sockets.age()).toBe(Infinity);
    await sockets.fresh();
    expect(sockets.age()).toBe(0);
    t = 50;
    await sockets.fresh(100);
    expect(sockets.age()).toBe(50); // no new read
    t = 500;
    const a = sockets.refresh();
    expect(sockets.refresh()).toBe(a);
    await Promise.all([a, sockets.fresh(100)]);
    expect(sockets.age()).toBe(0);
  });

  it('forgets the oldest closed tuples beyond maxClosed, and never a live socket that reuses a tuple', async () => {
    let t = 0;
    const sockets = new KernelSockets(() => t, { maxClosed: 2, closedMemoryMs: 1000 });
    for (let id = 1; id <= 3; id++) {
      sockets.watch(id, '10.0.0.1', 40000 + id, '10.0.0.2', 80);
      sockets.release(id);
    }
    expect(sockets.watched).toBe(2);
    // The same 4-tuple as a closed one, live again: its old closed record must not take it away.
    sockets.watch(9, '10.0.0.1', 40003, '10.0.0.2', 80);
    t = 5000;
    await sockets.fresh();
    expect(sockets.watched).toBe(1);
    sockets.release(9);
    sockets.release(9); // twice: nothing more
    expect(sockets.watched).toBe(1);
    expect(sockets.watch(10, 'nope', 1, '10.0.0.2', 80)).toBe(false);
  });

  it('applies the watches and releases of many connections in one native call, in order, and every read sees them', async () => {
    let t = 0;
    const sockets = new KernelSockets(() => t, { maxClosed: 1000, closedMemoryMs: 1000 });
    const local = parseAddress('10.0.0.1')!.words;
    const remote = parseAddress('10.0.0.2')!.words;
    for (let id = 1; id <= 20; id++) {
      sockets.watchWords(id, 4, local, 40000 + id, remote, 80);
      if (id <= 15) sockets.release(id);
    }
    // Forty calls, none of them across N-API yet: one crossing when something reads the table.
    expect(sockets.applyCalls).toBe(0);
    expect(sockets.changes).toBe(35);
    expect(sockets.watched).toBe(20);
    expect(sockets.applyCalls).toBe(1);
    // A queue longer than its room is applied as it fills, order kept: release after watch.
    for (let id = 100; id < 300; id++) {
      sockets.watchWords(id, 4, local, 30000 + id, remote, 443);
      sockets.release(id);
    }
    expect(sockets.applyCalls).toBeGreaterThan(1);
    expect(sockets.watched).toBe(220);
    // The releases carried their own time: those of t = 0 expire at a refresh past 1000 ms.
    t = 5000;
    await sockets.fresh();
    expect(sockets.watched).toBe(5);
  });

  it('keeps the watched tuples a model keeps through thousands of watches, re-watches, releases and forgets', () => {
    // The native set deletes without tombstones (a probe run shifts back into the hole): a tuple
    // it failed to find would be added twice or never forgotten, and the count would drift.
    const maxClosed = 1500;
    const sockets = new KernelSockets(() => t, { maxClosed, closedMemoryMs: 1e12 });
    let t = 0;
    const tupleOf = new Map<number, string>();
    const watched = new Map<string, { live: boolean; closedAt: number }>();
    const closedOrder: Array<[string, number]> = [];
    const local = new Uint32Array(4);
    const remote = parseAddress('10.9.0.2')!.words;
    let seed = 12345;
    const rand = (n: number): number => {
      // xorshift32: a deterministic sequence whose low bits are as good as its high ones.
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    let nextId = 1;
    for (let step = 0; step < 12000; step++) {
      t++;
      const op = rand(10);
      const live = [...tupleOf.keys()];
      if (op < 5 || live.length === 0) {
        // A new socket (or, one time in five, an id watched again with another tuple), from a
        // pool of 4,000 tuples so that closed ones come back live.
        const id = op === 0 && live.length > 0 ? live[rand(live.length)]! : nextId++;
        const port = 1000 + rand(4000);
        local[3] = 0x0a090001;
        sockets.watchWords(id, 4, local, port, remote, 80);
        const key = String(port);
        const old = tupleOf.get(id);
        if (old !== undefined) watched.delete(old);
        tupleOf.set(id, key);
        watched.set(key, { live: true, closedAt: 0 });
      } else {
        const id = live[rand(live.length)]!;
        sockets.release(id);
        const key = tupleOf.get(id)!;
        tupleOf.delete(id);
        watched.set(key, { live: false, closedAt: t });
        closedOrder.push([key, t]);
        while (closedOrder.length > maxClosed) {
          const [k, at] = closedOrder.shift()!;
          const w = watched.get(k);
          if (w !== undefined && !w.live && w.closedAt === at) watched.delete(k);
        }
      }
      if (step % 97 === 0) expect(sockets.watched).toBe(watched.size);
    }
    expect(sockets.watched).toBe(watched.size);
    expect(watched.size).toBeGreaterThan(1000);
  });

  it('the addon refuses a malformed tuple with a clear error', () => {
    const table = new (loadAddon().SocketTable)(1000, 10, false);
    expect(() => table.watch(1, new Uint32Array(3))).toThrow(/tuple must be/);
    expect(() => table.stateOf(new Uint32Array([5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/tuple must be/);
    expect(() => table.refresh(0, null as unknown as () => void)).toThrow(/refresh\(nowMs, done\)/);
  });
});

describe('ConnectionRegistry.prepareScrape', () => {
  it('reads the kernel before an off-rhythm scrape, and ahead of a scrape that keeps the rhythm', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const clock = new ManualClock();
    const registry = new ConnectionRegistry(clock);
    try {
      const refresh = vi.spyOn(registry.kernel, 'refresh');
      // Nothing watched: no read at all.
      await registry.prepareScrape();
      expect(refresh).toHaveBeenCalledTimes(0);
      registry.kernel.watch(1, '10.0.0.1', 40000, '10.0.0.2', 80);
      clock.advance(15_000);
      await registry.prepareScrape(); // the first with a socket to find: waits for a read
      expect(refresh).toHaveBeenCalledTimes(1);
      clock.advance(15_000);
      await registry.prepareScrape(); // 15 s after the last: waits (no snapshot ahead yet), and anticipates
      expect(refresh).toHaveBeenCalledTimes(2);
      // 14.5 s later the next snapshot is taken in the background...
      clock.advance(14_500);
      vi.advanceTimersByTime(14_500);
      expect(refresh).toHaveBeenCalledTimes(3);
      await refresh.mock.results[2]!.value;
      // ...and the scrape that comes on time uses it without another read.
      clock.advance(500);
      await registry.prepareScrape();
      expect(refresh).toHaveBeenCalledTimes(3);
      // An upstream socket opened or closed after the snapshot began: the scrape waits for a new one.
      clock.advance(14_500);
      vi.advanceTimersByTime(14_500);
      expect(refresh).toHaveBeenCalledTimes(4);
      await refresh.mock.results[3]!.value;
      registry.kernel.release(1);
      clock.advance(500);
      await registry.prepareScrape();
      expect(refresh).toHaveBeenCalledTimes(5);
      // A scrape that comes long after the rhythm broke waits for a fresh read again.
      clock.advance(14_500);
      vi.advanceTimersByTime(14_500);
      await refresh.mock.results[5]!.value;
      clock.advance(60_000);
      await registry.prepareScrape();
      expect(refresh).toHaveBeenCalledTimes(7);
    } finally {
      registry.close();
      vi.useRealTimers();
    }
  });
});
