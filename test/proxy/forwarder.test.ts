/**
 * The proxy's dials (src/proxy/forwarder.ts) against loopback servers, with a stack that records
 * what it is told: a destination mapped to a host name is resolved first, --upstream-bind sets
 * the source address, a refused destination refuses the app's SYN, and the pipe of an accepted
 * connection proxies bytes.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamForwarder } from '../../src/proxy/forwarder.js';
import type { Pipe } from '../../src/proxy/pipe.js';
import type { DestinationPolicy, Target } from '../../src/proxy/policy.js';
import type { AfterFlush, PendingSyn, Stack } from '../../src/stack/stack.js';
import type { TcpConn } from '../../src/tcp/conn.js';
import { internAddressWords } from '../../src/wire/address.js';
import { until } from './upstream-harness.js';

interface Outcome {
  accepted: Pipe[];
  rejected: Array<{ how: string; handshake: string }>;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function proxyTo(target: Target, upstreamBind?: string): { proxy: UpstreamForwarder; outcome: Outcome; syn: () => void } {
  const policy = { resolveAddress: () => target, permits: () => true } as unknown as DestinationPolicy;
  const proxy = new UpstreamForwarder({ clock: { now: () => Date.now() }, policy, connectTimeoutMs: 5000, idleTimeoutMs: 0, upstreamBind, maxDialsInFlight: 16 });
  const outcome: Outcome = { accepted: [], rejected: [] };
  const stack = {
    acceptPending(_req: PendingSyn, pipe: Pipe) {
      outcome.accepted.push(pipe);
      // What the socket looked like when the SYN-ACK would have been written.
      (pipe as unknown as { seenAtAccept: unknown[] }).seenAtAccept = [{ registered: pipe.socket.registered, local: pipe.socket.localAddress }];
      // A connection that keeps what the destination sends.
      const got: Buffer[] = [];
      return {
        write: (b: Buffer) => (got.push(b), true),
        close() {},
        abort() {},
        consume() {},
        got,
      } as unknown as TcpConn;
    },
    rejectPending(_req: PendingSyn, how: string, handshake: string) {
      outcome.rejected.push({ how, handshake });
    },
    dropPendingQuietly() {},
    wake() {},
    flushSoon() {},
    sendDueNow() {},
    openBatch() {},
    closeBatch() {},
    runAfterFlush: (p: Pipe) => p.afterFlush(),
    runAfterFlushFirst: (task: AfterFlush) => task.afterFlush(),
    linkHoldsNoViews: true,
  } as unknown as Stack;
  proxy.attach(stack);
  cleanups.push(() => {
    for (const p of proxy.pipes) p.abort('shutdown');
    proxy.stopAccepting();
    proxy.close();
  });
  let id = 0;
  const syn = (): void =>
    proxy.onSyn({ id: ++id, flow: { family: 4, local: new Uint32Array([0, 0, 0, 0xc6120001]), localPort: 80 } } as unknown as PendingSyn);
  return { proxy, outcome, syn };
}

async function listen(host: string, onConn: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    onConn(s);
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, host, resolve);
  });
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as net.AddressInfo).port;
}

describe('the forwarder names destinations', () => {
  it('gives the policy the text of each SYN\'s own destination, as the address words change and come back', () => {
    const texts: string[] = [];
    const policy = {
      resolveAddress: (_f: number, _w: Uint32Array, text: string) => (texts.push(text), null),
      permits: () => true,
    } as unknown as DestinationPolicy;
    const proxy = new UpstreamForwarder({ clock: { now: () => Date.now() }, policy, connectTimeoutMs: 5000, idleTimeoutMs: 0, maxDialsInFlight: 16 });
    const rejected: string[] = [];
    proxy.attach({ rejectPending: (_r: PendingSyn, how: string) => rejected.push(how) } as unknown as Stack);
    cleanups.push(() => proxy.close());
    const a = internAddressWords([0, 0, 0, 0xc6120001]);
    const b = internAddressWords([0, 0, 0, 0xc6120002]);
    const six = internAddressWords([0x20010db8, 0, 0, 1]);
    const flows: Array<[4 | 6, Uint32Array]> = [[4, a], [4, a], [4, b], [4, a], [6, six], [6, a]];
    for (const [family, local] of flows) proxy.onSyn({ id: 1, flow: { family, local, localPort: 80 } } as unknown as PendingSyn);
    expect(texts).toEqual(['198.18.0.1', '198.18.0.1', '198.18.0.2', '198.18.0.1', '2001:db8::1', '::c612:1']);
    expect(rejected).toEqual(Array(6).fill('prohibited'));
  });
});

describe('the forwarder dials', () => {
  it('resolves a destination mapped to a host name, then proxies both ways', async () => {
    const port = await listen('127.0.0.1', (s) => s.end('from the destination'));
    const { outcome, syn } = proxyTo({ host: 'localhost', port, address: null });
    // localhost may resolve to ::1 first: listen there too when this host has IPv6.
    await listen('::1', (s) => s.end('from the destination')).catch(() => {});
    syn();
    await until('the accepted connection', () => outcome.accepted.length === 1);
    const pipe = outcome.accepted[0]!;
    expect(pipe.dialedHost).toBe('localhost');
    pipe.onEstablished(pipe.conn!);
    const got = (pipe.conn as unknown as { got: Buffer[] }).got;
    await until('the data', () => Buffer.concat(got).toString() === 'from the destination');
    expect(outcome.rejected).toEqual([]);
  });

  it('binds upstream sockets to --upstream-bind', async () => {
    let peer = '';
    const port = await listen('127.0.0.1', (s) => {
      peer = s.remoteAddress ?? '';
      s.end();
    });
    const { outcome, syn } = proxyTo({ host: '127.0.0.1', port, address: null }, '127.0.0.2');
    syn();
    await until('the accepted connection', () => outcome.accepted.length === 1 && peer !== '');
    expect(peer).toBe('127.0.0.2');
    expect(outcome.accepted[0]!.upstreamEndpoints()?.local).toMatch(/^127\.0\.0\.2:\d+$/);
  });

  it('accepts a dial that connected inside connect(2) before onSyn returns, and proxies from it', async () => {
    // Loopback: the kernel runs the destination's side of the handshake within connect(2).
    const port = await listen('127.0.0.1', (s) => s.end('greeting'));
    const { proxy, outcome, syn } = proxyTo({ host: '127.0.0.1', port, address: null });
    syn();
    expect(outcome.accepted).toHaveLength(1);
    expect(proxy.dialsInFlight).toBe(0);
    const pipe = outcome.accepted[0]!;
    pipe.onEstablished(pipe.conn!);
    const got = (pipe.conn as unknown as { got: Buffer[] }).got;
    await until('the greeting', () => Buffer.concat(got).toString() === 'greeting');
    expect(outcome.rejected).toEqual([]);
  });

  it("writes the SYN-ACK of a dial that connected inside connect(2) before the socket's epoll registration and getsockname", async () => {
    const port = await listen('127.0.0.1', (s) => s.end('greeting'));
    const { outcome, syn } = proxyTo({ host: '127.0.0.1', port, address: null });
    const atAccept: Array<{ registered: boolean; local: string | undefined }> = [];
    syn();
    // acceptPending (which writes the SYN-ACK) saw the socket before both system calls...
    const pipe = outcome.accepted[0]!;
    atAccept.push(...(pipe as unknown as { seenAtAccept: Array<{ registered: boolean; local: string | undefined }> }).seenAtAccept);
    expect(atAccept).toEqual([{ registered: false, local: undefined }]);
    // ...and they followed before onSyn returned: the pipe's events find its local end.
    expect(pipe.socket.registered).toBe(true);
    expect(pipe.upstreamEndpoints()?.local).toMatch(/^127\.0\.0\.1:\d+$/);
    pipe.onEstablished(pipe.conn!);
    const got = (pipe.conn as unknown as { got: Buffer[] }).got;
    await until('the greeting', () => Buffer.concat(got).toString() === 'greeting');
  });

  it("refuses the app's SYN when the destination refuses", async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const { proxy, outcome, syn } = proxyTo({ host: '127.0.0.1', port, address: null });
    syn();
    await until('the refusal', () => outcome.rejected.length === 1);
    expect(outcome.rejected[0]).toEqual({ how: 'refused', handshake: 'upstream_refused' });
    expect(outcome.accepted).toEqual([]);
    expect(proxy.dialsInFlight).toBe(0);
    expect(proxy.upstreamSockets).toBe(0);
  });

  it('rejects an --upstream-bind that is not an address', () => {
    const policy = {} as DestinationPolicy;
    expect(() => new UpstreamForwarder({ clock: { now: () => 0 }, policy, connectTimeoutMs: 1, idleTimeoutMs: 0, upstreamBind: 'not-an-ip', maxDialsInFlight: 1 })).toThrow(
      /not an IP address/,
    );
  });
});
