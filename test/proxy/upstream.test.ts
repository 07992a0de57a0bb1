/**
 * Upstream sockets (src/proxy/upstream.ts over native/upstream/upstream.cc) against real loopback
 * servers: connect outcomes, edge-triggered reads (pause/resume, FIN with data, FIN alone),
 * half-close both ways, write queueing under backpressure, resets both ways, stale events of
 * closed sockets, the idle timeout.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UpstreamSocket, UpstreamSockets } from '../../src/proxy/upstream.js';
import { UPSTREAM_CONNECT_RECHECK, UPSTREAM_IO_LENGTH, UPSTREAM_IO_OUT } from '../../src/native/addon.js';
import { RecordingHandler, dial, until } from './upstream-harness.js';

let sockets: UpstreamSockets;
const servers: net.Server[] = [];

beforeEach(() => {
  sockets = new UpstreamSockets({ clock: { now: () => Date.now() }, idleTimeoutMs: 0 });
});

afterEach(async () => {
  sockets.close();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function server(onConn: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  servers.push(srv);
  return (srv.address() as net.AddressInfo).port;
}

/** A port nothing listens on (bound then closed). */
/**
 * A socket dialled to a server that reads nothing until resumed (its socket buffers fill), once
 * the server has its side; `got` collects what the server reads afterwards.
 */
async function dialPausedServer() {
  let serverSide: net.Socket | null = null;
  const got: Buffer[] = [];
  const port = await server((s) => {
    serverSide = s;
    s.pause();
    s.on('data', (d) => got.push(d));
  });
  const h = new RecordingHandler();
  const sock = await dial(sockets, port, h);
  await until('the server side', () => serverSide !== null);
  return { got, h, sock, serverSocket: serverSide as unknown as net.Socket };
}

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('UpstreamSockets', () => {
  it('a refused connect reports ECONNREFUSED and leaves nothing open', async () => {
    const port = await closedPort();
    const h = new RecordingHandler();
    await expect(dial(sockets, port, h)).rejects.toThrow('ECONNREFUSED');
    expect(sockets.size).toBe(0);
  });

  it('connects, reports its local end, and echoes both ways with a clean close', async () => {
    const port = await server((s) => s.on('data', (d) => s.write(d)).on('end', () => s.end()));
    const h = new RecordingHandler();
    const sock = await dial(sockets, port, h);
    expect(sock.connecting).toBe(false);
    expect(sock.localAddress).toBe('127.0.0.1');
    expect(sock.localPort).toBeGreaterThan(0);
    expect(sock.remoteAddress).toBe('127.0.0.1');
    sock.resume();
    const msg = Buffer.from('hello upstream');
    expect(sock.write([msg.subarray(0, 5), msg.subarray(5)], 2, msg.length)).toBe(msg.length);
    await until('the echo', () => h.received.length === msg.length);
    expect(h.received.equals(msg)).toBe(true);
    sock.end();
    await until('the close', () => h.log.includes('close'));
    expect(h.log).toEqual(['end', 'close']);
    expect(sock.destroyed).toBe(true);
    expect(sockets.size).toBe(0);
  });

  it('keeps what arrives while paused (a server that speaks first) and reads it on resume, FIN included', async () => {
    const banner = Buffer.from('220 hello from the server\r\n');
    const port = await server((s) => s.end(banner));
    const h = new RecordingHandler();
    const sock = await dial(sockets, port, h);
    // Paused since the dial: the banner and the FIN wait in the kernel.
    await new Promise((r) => setTimeout(r, 50));
    expect(h.chunks).toEqual([]);
    expect(h.log).toEqual([]);
    sock.resume();
    await until('the end', () => h.log.includes('end'));
    expect(h.received.equals(banner)).toBe(true);
    sock.end();
    await until('the close', () => h.log.includes('close'));
  });

  it('closes a socket whose server finished first with close(2) alone, and the server still gets a FIN, not a reset', async () => {
    const banner = Buffer.from('hello');
    let serverEnded = false;
    let serverError: string | null = null;
    const port = await server((s) => {
      s.on('end', () => (serverEnded = true));
      s.on('error', (e: NodeJS.ErrnoException) => (serverError = e.code ?? 'error'));
      s.end(banner);
    });
    const h = new RecordingHandler();
    const sock = await dial(sockets, port, h);
    sock.resume();
    await until('the end', () => h.log.includes('end'));
    const shutdown = vi.spyOn(sockets.native, 'upstreamShutdown');
    const close = vi.spyOn(sockets.native, 'upstreamClose');
    try {
      sock.end();
      // The server's FIN was read: no shutdown(2) before the close(2), which sends our FIN.
      expect(shutdown).not.toHaveBeenCalled();
      expect(close).toHaveBeenCalledTimes(1);
      expect(close.mock.calls[0]![1]).toBe(false);
    } finally {
      shutdown.mockRestore();
      close.mockRestore();
    }
    await until('our FIN at the server', () => serverEnded || serverError !== null);
    expect(serverError).toBeNull();
    await until('the close', () => h.log.includes('close'));
    expect(h.log).toEqual(['end', 'close']);
    expect(h.received.equals(banner)).toBe(true);
  });

  it("reads the poller's epoll descriptor once, not once per connect (a native accessor: an N-API call each)", async () => {
    const port = await server((s) => s.end());
    const fresh = new UpstreamSockets({ clock: { now: () => Date.now() }, idleTimeoutMs: 0 });
    try {
      // The poller seen through a proxy that counts reads of its epfd.
      const inner = fresh as unknown as { poller: object };
      const real = inner.poller;
      let reads = 0;
      inner.poller = new Proxy(real, {
        get(target, key) {
          if (key === 'epfd') reads++;
          const v = Reflect.get(target, key, target) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      for (let i = 0; i < 3; i++) (await dial(fresh, port, new RecordingHandler())).destroy();
      expect(reads).toBe(0);
      inner.poller = real;
    } finally {
      fresh.close();
    }
  });

  it("passes a connect's destination and bind address through the addon's io array: a few integers per call, no typed array", async () => {
    const port = await server((s) => s.end());
    const connect = vi.spyOn(sockets.native, 'upstreamConnectIo');
    try {
      const h = new RecordingHandler();
      // Bound to 127.0.0.2 (--upstream-bind): the bind address's words reach the native side too.
      const s = sockets.connect(h, 4, new Uint32Array([0, 0, 0, 0x7f000001]), port, { family: 4, words: new Uint32Array([0, 0, 0, 0x7f000002]) });
      if (typeof s === 'string') throw new Error(s);
      s.register();
      expect(s.localAddress).toBe('127.0.0.2');
      expect(s.localPort).toBeGreaterThan(0);
      s.resume();
      await until('the end', () => h.log.includes('end'));
      s.destroy();
      expect(connect).toHaveBeenCalledTimes(1);
      expect(connect.mock.calls[0]!.every((a) => typeof a === 'number')).toBe(true);
      // The twelve-argument call with typed arrays is gone from the addon.
      expect('upstreamConnect' in sockets.native).toBe(false);
      expect(sockets.native.UPSTREAM_IO_LENGTH).toBe(UPSTREAM_IO_LENGTH);
    } finally {
      connect.mockRestore();
    }
  });

  it('reads small answers through the bound shared buffer with the fd alone, and a bulk one into buffers of its own', async () => {
    const big = Buffer.alloc(256 * 1024, 7);
    const port = await server((s) => {
      s.once('data', (d) => {
        // A small answer first, then a bulk one once asked again.
        if (d.toString() === 'small') s.write('ok');
        s.once('data', () => s.end(big));
      });
    });
    const bound = vi.spyOn(sockets.native, 'upstreamReadBound');
    const general = vi.spyOn(sockets.native, 'upstreamRead');
    try {
      const h = new RecordingHandler();
      const s = await dial(sockets, port, h);
      s.resume();
      s.writeOne(Buffer.from('small'));
      await until('the small answer', () => h.received.length === 2);
      expect(h.received.toString()).toBe('ok');
      // Every read so far went to the shared buffer, each call passing only the fd.
      expect(bound.mock.calls.length).toBeGreaterThan(0);
      expect(bound.mock.calls.every((a) => a.length === 1 && typeof a[0] === 'number')).toBe(true);
      expect(general).not.toHaveBeenCalled();
      s.writeOne(Buffer.from('bulk'));
      await until('the end', () => h.log.includes('end'));
      expect(h.received.length).toBe(2 + big.length);
      expect(h.received.subarray(2).equals(big)).toBe(true);
      // A read that filled the shared buffer's bulk threshold moved the socket to buffers of its own.
      expect(general).toHaveBeenCalled();
      s.destroy();
    } finally {
      bound.mockRestore();
      general.mockRestore();
    }
  });

  it("calls the addon through an object with fast properties, not the addon's own exports", async () => {
    const { createRequire } = await import('node:module');
    const { ADDON_PATH } = await import('../../src/native/addon.js');
    const raw = createRequire(import.meta.url)(ADDON_PATH) as object;
    // The same functions, on another object (V8 keeps the exports object in dictionary mode).
    expect(sockets.native).not.toBe(raw);
    expect(sockets.native.upstreamRead).toBe((raw as { upstreamRead: unknown }).upstreamRead);
    expect(Object.keys(sockets.native).sort()).toEqual(Object.keys(raw).sort());
  });

  it('keeps its list of deferred notifications (the array) from turn to turn, emptied but not cut back', async () => {
    const port = await server((s) => s.end());
    const inner = sockets as unknown as { deferred: unknown[] };
    for (let round = 0; round < 2; round++) {
      const hs = [new RecordingHandler(), new RecordingHandler()];
      const socks = [await dial(sockets, port, hs[0]), await dial(sockets, port, hs[1])];
      for (const s of socks) s.destroy();
      await until('both closes reported', () => hs.every((h) => h.log.includes('close')));
      // Every close reported once, nothing held; the array kept (V8 frees the backing store of an
      // array cut to length 0, and the next push allocates a new one).
      expect(hs.map((h) => h.log.filter((e) => e === 'close').length)).toEqual([1, 1]);
      expect(inner.deferred.length).toBeGreaterThanOrEqual(2);
      expect(inner.deferred.every((e) => e === null)).toBe(true);
    }
  });

  it('still half-closes with shutdown(2) while the server has not finished', async () => {
    const port = await server((s) => s.on('end', () => s.end('bye')));
    const h = new RecordingHandler();
    const sock = await dial(sockets, port, h);
    sock.resume();
    const shutdown = vi.spyOn(sockets.native, 'upstreamShutdown');
    try {
      sock.end();
      expect(shutdown).toHaveBeenCalledTimes(1);
    } finally {
      shutdown.mockRestore();
    }
    await until('the close', () => h.log.includes('close'));
    expect(h.received.toString()).toBe('bye');
  });

  it('takes a connect reported writable without error or hangup as complete without reading SO_ERROR, and reads it otherwise', () => {
    const native = { upstreamSocketError: vi.fn(() => 111), upstreamClose: vi.fn(() => 0) };
    const set = { native, release: vi.fn(), touch: vi.fn(), connectedLater: vi.fn(), budget: null } as unknown as UpstreamSockets;
    const words = new Uint32Array([0, 0, 0, 0x7f000001]);
    const good = new RecordingHandler();
    const ok = new UpstreamSocket(set, good, 4, words, 9);
    ok.connected(100, false);
    ok.onEvent(0x004); // EPOLLOUT
    expect(native.upstreamSocketError).not.toHaveBeenCalled();
    expect(good.log).toEqual(['connect']);
    expect(ok.connecting).toBe(false);
    const bad = new RecordingHandler();
    const refused = new UpstreamSocket(set, bad, 4, words, 9);
    refused.connected(101, false);
    refused.onEvent(0x004 | 0x008 | 0x010); // EPOLLOUT | EPOLLERR | EPOLLHUP: what a refused connect reports
    expect(native.upstreamSocketError).toHaveBeenCalledWith(101);
    expect(bad.log).toEqual(['connect-failed ECONNREFUSED']);
    expect(native.upstreamClose).toHaveBeenCalledWith(101, false);
  });

  it('stops reading when paused from a data report and goes on exactly where it stopped', async () => {
    const total = 3 * 1024 * 1024;
    const payload = Buffer.alloc(total);
    for (let i = 0; i < total; i++) payload[i] = (i * 7 + (i >> 11)) & 0xff;
    const port = await server((s) => s.end(payload));
    const h = new RecordingHandler();
    const sock = await dial(sockets, port, h);
    let pauses = 0;
    h.onChunk = () => {
      // Pause after every 256 KiB, resume a little later: the edge-triggered reads must not lose
      // the rest (no new edge comes for bytes already queued).
      if (h.received.length >= (pauses + 1) * 256 * 1024) {
        pauses++;
        sock.pause();
        setTimeout(() => sock.resume(), 2);
      }
    };
    sock.resume();
    await until('the end', () => h.log.includes('end'), 10_000);
    expect(pauses).toBeGreaterThan(5);
    expect(h.received.equals(payload)).toBe(true);
    sock.destroy();
  });

  it('half-close: our FIN reaches the server while its answer still comes back', async () => {
    const port = await server((s) => {
      const got: Buffer[] = [];
      s.on('data', (d) => got.push(d));
      // Answers only after our FIN, then closes.
      s.on('end', () => s.end(Buffer.concat([Buffer.from('got '), ...got])));
    });
    const h = new RecordingHandler();
    const sock = await dial(sockets, port, h);
    sock.resume();
    sock.write([Buffer.from('abc')], 1, 3);
    sock.end();
    expect(sock.writable).toBe(false);
    await until('the close', () => h.log.includes('close'));
    expect(h.received.toString()).toBe('got abc');
    expect(h.log).toEqual(['end', 'close']);
  });

  it('queues what the kernel does not take, writes it in order when there is room, then drains', async () => {
    const { got, h, sock, serverSocket } = await dialPausedServer();
    const chunk = Buffer.alloc(256 * 1024);
    let sent = 0;
    for (let i = 0; i < 64 && sock.writableLength === 0; i++) {
      chunk.fill(i & 0xff);
      sock.write([chunk], 1, chunk.length);
      sent += chunk.length;
    }
    expect(sock.writableLength).toBeGreaterThan(0);
    // More while bytes are queued: copied behind them, nothing goes to the kernel out of order.
    const tail = Buffer.from('the very end');
    expect(sock.write([tail], 1, tail.length)).toBe(0);
    sent += tail.length;
    serverSocket.resume();
    await until('the drain', () => h.log.includes('drain'), 10_000);
    expect(sock.writableLength).toBe(0);
    await until('every byte at the server', () => got.reduce((n, b) => n + b.length, 0) === sent, 10_000);
    const all = Buffer.concat(got);
    for (let i = 0; i < sent - tail.length; i += 256 * 1024) expect(all[i]).toBe((i / (256 * 1024)) & 0xff);
    expect(all.subarray(sent - tail.length).equals(tail)).toBe(true);
    sock.destroy();
  });

  it('writeOne writes one buffer with one write(2), queues what the kernel leaves, and keeps the order with write', async () => {
    const { got, h, sock, serverSocket } = await dialPausedServer();
    const first = Buffer.from('one small request');
    expect(sock.writeOne(first)).toBe(first.length);
    expect(sock.writableLength).toBe(0);
    const chunk = Buffer.alloc(256 * 1024);
    let sent = first.length;
    let i = 0;
    for (; i < 64 && sock.writableLength === 0; i++) {
      chunk.fill(i & 0xff);
      const took = sock.writeOne(chunk);
      expect(took + sock.writableLength).toBe(chunk.length);
      sent += chunk.length;
    }
    expect(sock.writableLength).toBeGreaterThan(0);
    // Queued bytes ahead: both calls copy behind them, nothing reaches the kernel out of order.
    const middle = Buffer.from('queued by writeOne');
    const tail = Buffer.from('the very end');
    expect(sock.writeOne(middle)).toBe(0);
    expect(sock.write([tail], 1, tail.length)).toBe(0);
    sent += middle.length + tail.length;
    serverSocket.resume();
    await until('the drain', () => h.log.includes('drain'), 10_000);
    await until('every byte at the server', () => got.reduce((n, b) => n + b.length, 0) === sent, 10_000);
    const all = Buffer.concat(got);
    expect(all.subarray(0, first.length).equals(first)).toBe(true);
    for (let k = 0; k < i; k++) expect(all[first.length + k * 256 * 1024]).toBe(k & 0xff);
    expect(all.subarray(sent - tail.length - middle.length).toString()).toBe('queued by writeOnethe very end');
    sock.destroy();
  });

  it('writes more buffers than one writev takes without waiting for an event that never comes', async () => {
    // 200 views in one flush (a large TUN batch) to a server that reads and never answers: the
    // kernel takes them all, 64 at a time; nothing may be left queued for an EPOLLOUT edge that
    // only a full socket buffer would bring.
    let got = 0;
    const port = await server((s) => s.on('data', (d) => (got += d.length)));
    const h = new RecordingHandler();
    const sock = await dial(sockets, port, h);
    const chunks = Array.from({ length: 200 }, (_, i) => Buffer.alloc(100, i & 0xff));
    expect(sock.write(chunks, chunks.length, 200 * 100)).toBe(200 * 100);
    expect(sock.writableLength).toBe(0);
    await until('every byte at the server', () => got === 200 * 100);
    sock.destroy();
  });

  it("the server's reset is reported as ECONNRESET and closes the socket", async () => {
    const port = await server((s) => s.once('data', () => s.resetAndDestroy()));
    const h = new RecordingHandler();
    const sock = await dial(sockets, port, h);
    sock.resume();
    sock.write([Buffer.from('x')], 1, 1);
    await until('the close', () => h.log.includes('close'));
    expect(h.log).toEqual(['error ECONNRESET', 'close']);
    expect(sockets.size).toBe(0);
  });

  it('a reset while paused is not held back until the app reads again', async () => {
    const port = await server((s) => s.once('data', () => s.resetAndDestroy()));
    const h = new RecordingHandler();
    const sock = await dial(sockets, port, h);
    sock.write([Buffer.from('x')], 1, 1);
    await until('the close', () => h.log.includes('close'));
    expect(h.log).toEqual(['error ECONNRESET', 'close']);
  });

  it('resetAndDestroy sends the server a RST, not a FIN', async () => {
    let serverError: string | null = null;
    let serverEnded = false;
    const port = await server((s) => {
      s.on('error', (e: NodeJS.ErrnoException) => (serverError = e.code ?? 'error'));
      s.on('end', () => (serverEnded = true));
    });
    const h = new RecordingHandler();
    const sock = await dial(sockets, port, h);
    await new Promise((r) => setTimeout(r, 20));
    sock.resetAndDestroy();
    await until('the reset at the server', () => serverError !== null || serverEnded);
    expect(serverError).toBe('ECONNRESET');
    expect(serverEnded).toBe(false);
    await until('the close report', () => h.log.includes('close'));
  });

  it("an event already fetched for a socket closed in the same batch does not reach its slot's next socket", async () => {
    // The first socket is closed and a second takes its slot; an event fetched for the first in
    // the same epoll_wait (fabricated here: the FIN of the first) arrives after both happened.
    const port = await server((s) => setTimeout(() => s.write('hi'), 30));
    const h1 = new RecordingHandler();
    const first = await dial(sockets, port, h1);
    const slot = first.slot;
    const staleGeneration = first.generation;
    first.destroy();
    const h2 = new RecordingHandler();
    const second = await dial(sockets, port, h2);
    expect(second.slot).toBe(slot);
    expect(second.generation).not.toBe(staleGeneration);
    const internals = sockets as unknown as { events: Int32Array; onEvents(count: number): void };
    internals.events.set([slot, staleGeneration, 0x001 | 0x004 | 0x2000]);
    internals.onEvents(1);
    second.resume();
    await until("the second socket's data", () => h2.chunks.length > 0);
    await new Promise((r) => setTimeout(r, 30));
    // Had the stale FIN reached it, its first short read would have been taken for the EOF.
    expect(h2.log).toEqual([]);
    expect(h2.received.toString()).toBe('hi');
    second.destroy();
  });
});

describe('UpstreamSockets: the system calls of a dial, off the app\'s connect path', () => {
  const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
  const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

  it('makes sockets ahead after a dial, uses them for the next dials, and closes the unused ones with the set', async () => {
    const port = await server((s) => s.on('data', (d) => s.write(d)));
    expect(sockets.spareSockets).toBe(0);
    const first = await dial(sockets, port);
    await nextTurn();
    expect(sockets.spareSockets).toBe(4);
    // The next dial's socket is one made ahead: one fewer spare until the turn ends.
    const h = new RecordingHandler();
    const second = await dial(sockets, port, h);
    expect(sockets.spareSockets).toBe(3);
    second.resume();
    expect(second.write([Buffer.from('ping')], 1, 4)).toBe(4);
    await until('the echo on a socket made ahead', () => h.received.toString() === 'ping');
    await nextTurn();
    expect(sockets.spareSockets).toBe(4);
    first.destroy();
    second.destroy();
    const before = openFds();
    sockets.close();
    // The four made ahead, and the set's epoll fd.
    expect(openFds()).toBe(before - 5);
    expect(sockets.spareSockets).toBe(0);
  });

  it('sets TCP_NODELAY with the second write, before its bytes, and spares it a socket written once or never', async () => {
    const port = await server((s) => s.on('data', (d) => s.write(d)));
    const first = await dial(sockets, port);
    await nextTurn();
    const native = sockets.native;
    // A destination that speaks first to an app that only reads: no setsockopt for its socket.
    const reader = await dial(sockets, port);
    expect(native.upstreamNoDelay(reader.fd)).toBe(0);
    const h = new RecordingHandler();
    const writer = await dial(sockets, port, h);
    writer.resume();
    const seen: boolean[] = [];
    const inner = sockets as unknown as { native: typeof native };
    inner.native = new Proxy(native, {
      get(target, key) {
        const v = Reflect.get(target, key, target) as unknown;
        if (key !== 'upstreamWritev') return v;
        return (fd: number, chunks: Buffer[], at: number, n: number, noDelay?: boolean): number => {
          seen.push(noDelay === true);
          return native.upstreamWritev(fd, chunks, at, n, noDelay);
        };
      },
    });
    try {
      // The first write goes out whole with Nagle on (nothing sent before it to wait behind).
      expect(writer.write([Buffer.from('ab')], 1, 2)).toBe(2);
      expect(native.upstreamNoDelay(writer.fd)).toBe(0);
      // The second could wait behind the first's unacknowledged segment: Nagle is off before it.
      expect(writer.write([Buffer.from('cd')], 1, 2)).toBe(2);
      expect(native.upstreamNoDelay(writer.fd)).toBe(1);
      expect(writer.write([Buffer.from('gh')], 1, 2)).toBe(2);
    } finally {
      inner.native = native;
    }
    expect(seen).toEqual([false, true, false]);
    await until('the echo', () => h.received.toString() === 'abcdgh');
    // The one-chunk write (writeOne) counts the same way.
    const h2 = new RecordingHandler();
    const single = await dial(sockets, port, h2);
    single.resume();
    expect(single.writeOne(Buffer.from('ef'))).toBe(2);
    expect(native.upstreamNoDelay(single.fd)).toBe(0);
    expect(single.writeOne(Buffer.from('ij'))).toBe(2);
    expect(native.upstreamNoDelay(single.fd)).toBe(1);
    await until('the echo of the one-chunk writes', () => h2.received.toString() === 'efij');
    for (const s of [first, reader, writer, single]) s.destroy();
  });

  it('with registerLater, a socket connected within connect(2) is in no epoll set and has no local end until register()', async () => {
    const port = await server((s) => s.end('greeting'));
    const h = new RecordingHandler();
    const sock = sockets.connect(h, 4, new Uint32Array([0, 0, 0, 0x7f000001]), port, null, true);
    if (typeof sock === 'string') throw new Error(sock);
    // Loopback: the kernel runs the server's side of the handshake within connect(2).
    expect(sock.connecting).toBe(false);
    expect(sock.registered).toBe(false);
    expect(sock.localAddress).toBeUndefined();
    sock.resume();
    await new Promise((r) => setTimeout(r, 30));
    // The greeting and the FIN are in the kernel, but no event reported them.
    expect(h.chunks).toEqual([]);
    sock.register();
    expect(sock.localAddress).toBe('127.0.0.1');
    expect(sock.localPort).toBeGreaterThan(0);
    // The epoll ADD reports what came before it (readiness now, not only later edges).
    await until('the greeting', () => h.log.includes('end'));
    expect(h.received.toString()).toBe('greeting');
    sock.destroy();
  });
});

describe('UpstreamSockets: the second look at a dial still connecting', () => {
  it('asks for it while dials complete within their connect call, and stops once several in a row completed by an event', () => {
    const native = sockets.native;
    const set = sockets as unknown as { io: Uint32Array };
    const recheckAsked: boolean[] = [];
    let nextState = 0;
    let nextFd = 9000;
    const connect = vi.spyOn(native, 'upstreamConnectIo').mockImplementation((_epfd, _slot, _generation, _fd, flags) => {
      recheckAsked.push((flags & UPSTREAM_CONNECT_RECHECK) !== 0);
      set.io.set([nextState, 4, 0, 0, 0, 0x7f000001, 40000], UPSTREAM_IO_OUT);
      return nextFd++;
    });
    const close = vi.spyOn(native, 'upstreamClose').mockImplementation(() => 0);
    try {
      const words = new Uint32Array([0, 0, 0, 0x7f000001]);
      const dialOnce = (state: number): UpstreamSocket => {
        nextState = state;
        const s = sockets.connect(new RecordingHandler(), 4, words, 9, null);
        if (typeof s === 'string') throw new Error(s);
        return s;
      };
      // A fresh set assumes near destinations (a veth or loopback away is what a TUN proxy has).
      dialOnce(1).destroy();
      expect(recheckAsked).toEqual([true]);
      // Eight dials completed by their epoll event (far destinations): the look stops.
      for (let i = 0; i < 8; i++) {
        const s = dialOnce(0);
        s.onEvent(0x004); // EPOLLOUT: the handshake completed after the call
        s.destroy();
      }
      expect(recheckAsked.slice(1)).toEqual([true, true, true, true, true, true, true, true]);
      dialOnce(0).destroy();
      expect(recheckAsked.at(-1)).toBe(false);
      // A dial found established by the call (the second look answered, or connect(2) itself): on again.
      dialOnce(1).destroy();
      dialOnce(1).destroy();
      expect(recheckAsked.slice(-2)).toEqual([false, true]);
    } finally {
      connect.mockRestore();
      close.mockRestore();
    }
  });
});

describe('UpstreamSockets idle timeout', () => {
  it('reports a socket idle once nothing was read or written for the timeout, and only then', async () => {
    sockets.close();
    sockets = new UpstreamSockets({ clock: { now: () => Date.now() }, idleTimeoutMs: 150 });
    const port = await server((s) => s.on('data', (d) => s.write(d)));
    const busyH = new RecordingHandler();
    const quietH = new RecordingHandler();
    const busy = await dial(sockets, port, busyH);
    const quiet = await dial(sockets, port, quietH);
    busy.resume();
    quiet.resume();
    const start = Date.now();
    while (Date.now() - start < 400) {
      busy.write([Buffer.from('ping')], 1, 4);
      await new Promise((r) => setTimeout(r, 40));
    }
    expect(quietH.log).toEqual(['idle']);
    expect(busyH.log).toEqual([]);
    await until('the busy one idle too', () => busyH.log.includes('idle'), 1000);
    busy.destroy();
    quiet.destroy();
  });
});
