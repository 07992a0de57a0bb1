/**
 * No loops and no way around policy (src/proxy/policy.ts, forwarder.ts): a --map to a host name
 * is held to --allow/--deny once resolved, synfin's own --listen address is never a destination,
 * and the proxy recognises a SYN of its own dial in flight. The end-to-end case, a --route that
 * sends unmapped destinations back into the device, is in no-loop.test.ts.
 */
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UpstreamForwarder } from '../../src/proxy/forwarder.js';
import { DestinationPolicy, ListenGuard } from '../../src/proxy/policy.js';
import { UpstreamSockets, type UpstreamSocket } from '../../src/proxy/upstream.js';
import { EventHub } from '../../src/stack/events.js';
import type { FlowKeyLike } from '../../src/stack/flow-table.js';
import type { AfterFlush, PendingSyn, Stack } from '../../src/stack/stack.js';
import type { TcpConn } from '../../src/tcp/conn.js';
import { parseAddress } from '../../src/wire/address.js';
import { until } from './upstream-harness.js';

const words = (a: string) => parseAddress(a)!.words;
const fam = (a: string) => parseAddress(a)!.family;

describe('DestinationPolicy.permits and ListenGuard', () => {
  it('permits: deny wins, an allow list admits only its networks, mapped IPv4 forms match', () => {
    const p = new DestinationPolicy({ allow: ['10.0.0.0/8', '::1/128'], deny: ['10.9.0.0/16'] });
    expect(p.permits(4, words('10.1.2.3'))).toBe(true);
    expect(p.permits(4, words('10.9.2.3'))).toBe(false);
    expect(p.permits(4, words('127.0.0.1'))).toBe(false);
    expect(p.permits(6, words('::1'))).toBe(true);
    expect(p.permits(6, words('::ffff:10.9.0.1'))).toBe(false);
    expect(new DestinationPolicy({}).permits(4, words('169.254.169.254'))).toBe(true);
  });

  it('a listener on one address: that address, and the unspecified ones, on its port only', () => {
    const g = new ListenGuard(() => ['10.1.2.3']);
    g.set('127.0.0.1', 9477);
    const is = (a: string, port = 9477) => g.isListener(fam(a), words(a), port);
    expect(is('127.0.0.1')).toBe(true);
    expect(is('::ffff:127.0.0.1')).toBe(true);
    expect(is('0.0.0.0')).toBe(true);
    expect(is('::')).toBe(true);
    expect(is('127.0.0.1', 9478)).toBe(false);
    expect(is('127.0.0.2')).toBe(false);
    expect(is('10.1.2.3')).toBe(false);
  });

  it('a listener on the unspecified address: every loopback and local interface address', () => {
    let reads = 0;
    const g = new ListenGuard(() => (reads++, ['10.1.2.3', 'fe80::1']));
    g.set('0.0.0.0', 9477);
    const is = (a: string, port = 9477) => g.isListener(fam(a), words(a), port);
    expect(is('10.1.2.4', 80)).toBe(false);
    // Interfaces are read only for a destination on the listening port.
    expect(reads).toBe(0);
    expect(is('10.1.2.3')).toBe(true);
    expect(is('fe80::1')).toBe(true);
    expect(is('127.8.9.10')).toBe(true);
    expect(is('::1')).toBe(true);
    expect(is('10.1.2.4')).toBe(false);
    expect(is('198.18.0.7')).toBe(false);
    expect(reads).toBeGreaterThan(0);
  });

  it('before the server listens nothing is refused', () => {
    expect(new ListenGuard().isListener(4, words('127.0.0.1'), 9477)).toBe(false);
  });
});

// ---------------------------------------------------------------- the proxy

interface Outcome {
  accepted: number;
  rejected: Array<{ how: string; handshake: string }>;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function proxyWith(policy: DestinationPolicy) {
  const events = new EventHub();
  const drops: string[] = [];
  events.subscribe({ drop: (_c, r) => drops.push(r) });
  const proxy = new UpstreamForwarder({ clock: { now: () => Date.now() }, policy, connectTimeoutMs: 5000, idleTimeoutMs: 0, maxDialsInFlight: 16, events });
  const outcome: Outcome = { accepted: 0, rejected: [] };
  const stack = {
    acceptPending() {
      outcome.accepted++;
      return { write: () => true, close() {}, abort() {}, consume() {} } as unknown as TcpConn;
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
    // No input batch here: what waits for the end of one (the dial's connect) runs at once.
    runAfterFlush(task: AfterFlush) {
      task.afterFlush();
    },
    runAfterFlushFirst(task: AfterFlush) {
      task.afterFlush();
    },
    linkHoldsNoViews: true,
  } as unknown as Stack;
  proxy.attach(stack);
  cleanups.push(() => {
    for (const p of proxy.pipes) p.abort('shutdown');
    proxy.stopAccepting();
    proxy.abortDials();
    proxy.close();
  });
  let id = 0;
  /** The app's SYN to 198.18.0.10:80 (what the --map rules below rewrite). */
  const req = (): PendingSyn => ({ id: ++id, flow: { family: 4, local: Uint32Array.of(0, 0, 0, 0xc612000a), localPort: 80 } }) as unknown as PendingSyn;
  return { proxy, outcome, drops, req };
}

async function server(): Promise<{ port: number; connections: () => number }> {
  let n = 0;
  const srv = net.createServer((s) => {
    n++;
    s.on('error', () => {});
    s.end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as net.AddressInfo).port, connections: () => n };
}

describe('the proxy', () => {
  it('a --map to a host name is denied by --deny once resolved, and nothing is dialled', async () => {
    const srv = await server();
    const connect = vi.spyOn(UpstreamSockets.prototype, 'connect');
    const { outcome, proxy, req } = proxyWith(new DestinationPolicy({ map: [`198.18.0.10:80=localhost:${srv.port}`], deny: ['127.0.0.0/8', '::1/128'] }));
    proxy.onSyn(req());
    await until('the refusal', () => outcome.rejected.length === 1);
    expect(outcome.rejected[0]).toEqual({ how: 'prohibited', handshake: 'upstream_unreachable' });
    expect(connect).not.toHaveBeenCalled();
    expect(proxy.dialsInFlight).toBe(0);
    expect(srv.connections()).toBe(0);
  });

  it('a --map to a host name outside --allow is refused; inside it, it is dialled', async () => {
    const srv = await server();
    const outside = proxyWith(new DestinationPolicy({ map: [`198.18.0.10:80=localhost:${srv.port}`], allow: ['10.0.0.0/8'] }));
    outside.proxy.onSyn(outside.req());
    await until('the refusal', () => outside.outcome.rejected.length === 1);
    expect(outside.outcome.rejected[0]!.how).toBe('prohibited');
    const inside = proxyWith(new DestinationPolicy({ map: [`198.18.0.10:80=localhost:${srv.port}`], allow: ['127.0.0.0/8', '::1/128'] }));
    inside.proxy.onSyn(inside.req());
    await until('the dial', () => inside.outcome.accepted === 1 || inside.outcome.rejected.length > 0);
    // Dialled (accepted, or refused by the kernel should localhost resolve to ::1 here): not prohibited.
    expect(inside.outcome.rejected.filter((r) => r.how === 'prohibited')).toEqual([]);
    expect(inside.outcome.accepted + inside.outcome.rejected.length).toBe(1);
  });

  it("synfin's own listen address is refused as a loop, by address or by name, and never dialled", async () => {
    const api = await server();
    const connect = vi.spyOn(UpstreamSockets.prototype, 'connect');
    for (const to of [`127.0.0.1:${api.port}`, `localhost:${api.port}`, `0.0.0.0:${api.port}`]) {
      const { outcome, proxy, drops, req } = proxyWith(new DestinationPolicy({ map: [`198.18.0.10:80=${to}`] }));
      proxy.listenGuard.set('127.0.0.1', api.port);
      proxy.onSyn(req());
      await until(`the refusal of ${to}`, () => outcome.rejected.length === 1);
      expect(outcome.rejected[0]).toEqual({ how: 'refused', handshake: 'upstream_refused' });
      expect(drops).toEqual(['loop']);
    }
    expect(connect).not.toHaveBeenCalled();
    expect(api.connections()).toBe(0);
  });

  it('recognises the SYN of its own dial in flight by its exact 4-tuple, until the dial settles', () => {
    // A dial that stays in connect: a socket whose local end is 198.18.0.1:43210.
    const fake = {
      connecting: true,
      destroyed: false,
      localFamily: 4,
      localWords: Uint32Array.of(0, 0, 0, 0xc6120001),
      localPort: 43210,
      remoteFamily: 4,
      remoteWords: Uint32Array.of(0, 0, 0, 0xc612000a),
      remotePort: 80,
      destroy() {},
    } as unknown as UpstreamSocket;
    vi.spyOn(UpstreamSockets.prototype, 'connect').mockReturnValue(fake);
    const { proxy, req } = proxyWith(new DestinationPolicy({}));
    const key = (srcPort: number, dst = 0xc612000a, dstPort = 80, src = 0xc6120001): FlowKeyLike => ({
      family: 4,
      src: Uint32Array.of(0, 0, 0, src),
      srcPort,
      dst: Uint32Array.of(0, 0, 0, dst),
      dstPort,
    });
    expect(proxy.isOwnConnection(key(43210))).toBe(false);
    const r = req();
    proxy.onSyn(r);
    expect(proxy.dialsInFlight).toBe(1);
    expect(proxy.isOwnConnection(key(43210))).toBe(true);
    expect(proxy.isOwnConnection(key(43211))).toBe(false);
    expect(proxy.isOwnConnection(key(43210, 0xc612000b))).toBe(false);
    expect(proxy.isOwnConnection(key(43210, 0xc612000a, 81))).toBe(false);
    expect(proxy.isOwnConnection(key(43210, 0xc612000a, 80, 0xc6120002))).toBe(false);
    expect(proxy.isOwnConnection({ ...key(43210), family: 6 })).toBe(false);
    // The app gave up: the dial is settled and its tuple no longer ours.
    proxy.onSynAborted(r);
    expect(proxy.isOwnConnection(key(43210))).toBe(false);
  });

  it('tells apart dials whose local ports share a chain of its port index, and finds each dial from its SYN (no Map by SYN)', () => {
    // maxDialsInFlight 16: sixteen chain heads, so ports 43210, 43226 and 43242 share one.
    const socket = (localPort: number) =>
      ({
        connecting: true,
        destroyed: false,
        localFamily: 4,
        localWords: Uint32Array.of(0, 0, 0, 0xc6120001),
        localPort,
        remoteFamily: 4,
        remoteWords: Uint32Array.of(0, 0, 0, 0xc612000a),
        remotePort: 80,
        destroy() {},
      }) as unknown as UpstreamSocket;
    const connect = vi.spyOn(UpstreamSockets.prototype, 'connect');
    connect.mockReturnValueOnce(socket(43210)).mockReturnValueOnce(socket(43226));
    const { proxy, req } = proxyWith(new DestinationPolicy({}));
    const key = (srcPort: number): FlowKeyLike => ({
      family: 4,
      src: Uint32Array.of(0, 0, 0, 0xc6120001),
      srcPort,
      dst: Uint32Array.of(0, 0, 0, 0xc612000a),
      dstPort: 80,
    });
    const a = req();
    const b = req();
    proxy.onSyn(a);
    proxy.onSyn(b);
    expect(proxy.dialsInFlight).toBe(2);
    // The SYN carries its dial (what onSynAborted finds it by).
    expect(a.forwarderState).toBeTypeOf('object');
    expect(a.forwarderState).not.toBeNull();
    expect(b.forwarderState).not.toBe(a.forwarderState);
    expect(proxy.isOwnConnection(key(43210))).toBe(true);
    expect(proxy.isOwnConnection(key(43226))).toBe(true);
    expect(proxy.isOwnConnection(key(43242))).toBe(false);
    // The first in the chain leaves; the other is still found, and the SYN forgets its dial.
    const dialA = a.forwarderState as { socket: unknown; settled: boolean };
    expect(dialA.socket).not.toBeNull();
    proxy.onSynAborted(a);
    expect(a.forwarderState).toBeNull();
    // The settled dial waits in the deadline queue without its socket (nor, through it, the
    // finished connection's objects).
    expect(dialA.settled).toBe(true);
    expect(dialA.socket).toBeNull();
    expect(proxy.dialsInFlight).toBe(1);
    expect(proxy.isOwnConnection(key(43210))).toBe(false);
    expect(proxy.isOwnConnection(key(43226))).toBe(true);
    // Aborted twice: nothing more happens.
    proxy.onSynAborted(a);
    expect(proxy.dialsInFlight).toBe(1);
    proxy.abortDials();
    expect(proxy.dialsInFlight).toBe(0);
    expect(b.forwarderState).toBeNull();
    expect(proxy.isOwnConnection(key(43226))).toBe(false);
  });
});
