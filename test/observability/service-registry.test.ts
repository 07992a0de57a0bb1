/**
 * The registry's side of named services, over a real Stack driven by app-side packets: each
 * connection is classified once when its SYN arrives, its index travels in the stack's columns
 * (TIME-WAIT records included), rows and ?service= use it, a change of services renames live
 * connections by name, and closes and resets are told to the per-service counters by index, with
 * describe() and serviceOf() answering for a connection during its `closed` event.
 */
import { describe, expect, it } from 'vitest';
import type { ConnectionSample } from '../../src/observability/metrics.js';
import { ConnectionRegistry, type ServiceEventSink } from '../../src/observability/registry.js';
import { parseServiceSpec, ServiceCatalogue, Services } from '../../src/observability/services.js';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';
import { Stack, type PendingSyn } from '../../src/stack/stack.js';
import type { TcpConn } from '../../src/tcp/conn.js';
import { CONSUMING_HANDLER, IssLink } from '../helpers/iss-link.js';
import { defaultTcpConfig } from '../../src/tcp/defaults.js';
import type { CloseReason, ConnIdentity, ResetDirection } from '../../src/tcp/events.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { State } from '../../src/tcp/state.js';
import { finishTcpChecksum, writeTcpPacket } from '../../src/wire/packet.js';
import { OutSegment, TcpFlag } from '../../src/wire/segment.js';

const APP = 0xc6120001; // 198.18.0.1
const DEST_A = 0xc6120102; // 198.18.1.2
const DEST_B = 0xc6120103; // 198.18.1.3
const ISN = 0xfffffff0;

function catalogue(...specs: string[]): ServiceCatalogue {
  return new ServiceCatalogue(specs.map((s) => parseServiceSpec(s)));
}

class RecordingSink implements ServiceEventSink {
  readonly closes: Array<[number, CloseReason]> = [];
  readonly resets: Array<[number, ResetDirection]> = [];
  readonly bytes = new Map<number, { bytesClientToUpstream: number; bytesUpstreamToClient: number }>();
  closed(service: number, reason: CloseReason): void {
    this.closes.push([service, reason]);
  }
  reset(service: number, direction: ResetDirection): void {
    this.resets.push([service, direction]);
  }
  connect(): void {}
  bytesOf(service: number) {
    let b = this.bytes.get(service);
    if (b === undefined) this.bytes.set(service, (b = { bytesClientToUpstream: 0, bytesUpstreamToClient: 0 }));
    return b;
  }
}

function setup(initial: ServiceCatalogue) {
  const clock = new ManualClock(1_000_000);
  const hub = new EventHub();
  const link = new IssLink();
  const syns: PendingSyn[] = [];
  const stack = new Stack({
    link,
    clock,
    tcp: defaultTcpConfig({ mslMs: 60_000 }),
    forwarder: { onSyn: (r) => syns.push(r), onSynAborted() {} },
    events: hub,
    setTimer: () => null,
    clearTimer: () => {},
  });
  const registry = new ConnectionRegistry(clock);
  const services = new Services(initial);
  const sink = new RecordingSink();
  registry.attach(stack);
  registry.useServices(services, sink);
  const buf = Buffer.alloc(200);
  const out = new OutSegment();
  const src = new Uint32Array(4);
  const dst = new Uint32Array(4);
  function send(port: number, dest: number, seq: number, ack: number, flags: number): void {
    out.clear();
    out.seq = seq;
    out.ack = ack;
    out.flags = flags;
    out.window = 65535;
    src[3] = APP;
    dst[3] = dest;
    const len = writeTcpPacket(buf, 0, 4, src, dst, port, 80, out, 0);
    finishTcpChecksum(buf, 0, 'full');
    stack.input(buf, 0, len, false);
    stack.flush();
  }
  const conns = new Map<number, { conn: TcpConn; iss: number; port: number; dest: number }>();
  let nextPort = 20_000;
  return {
    stack,
    registry,
    services,
    sink,
    hub,
    open(dest: number): number {
      const port = nextPort++;
      send(port, dest, ISN, 0, TcpFlag.SYN);
      const req = syns.shift()!;
      const conn = stack.acceptPending(req, CONSUMING_HANDLER)!;
      const iss = link.issByPort.get(port)!;
      send(port, dest, seqAdd(ISN, 1), seqAdd(iss, 1), TcpFlag.ACK);
      conns.set(conn.id, { conn, iss, port, dest });
      return conn.id;
    },
    /** synfin closes first and the app answers with its FIN: TIME-WAIT in the stack. */
    toTimeWait(id: number): void {
      const c = conns.get(id)!;
      c.conn.close(clock.now());
      stack.flush();
      send(c.port, c.dest, seqAdd(ISN, 1), seqAdd(c.iss, 2), TcpFlag.ACK);
      send(c.port, c.dest, seqAdd(ISN, 1), seqAdd(c.iss, 2), TcpFlag.FIN | TcpFlag.ACK);
    },
    reset(id: number): void {
      const c = conns.get(id)!;
      send(c.port, c.dest, seqAdd(ISN, 1), 0, TcpFlag.RST);
    },
    samples(): Array<{ state: State; service: number }> {
      const all: Array<{ state: State; service: number }> = [];
      registry.forEachSample((s: ConnectionSample) => all.push({ state: s.state, service: s.service ?? -1 }));
      return all.sort((a, b) => a.state - b.state || a.service - b.service);
    },
  };
}

describe('the registry and named services', () => {
  it('classifies each connection when its SYN arrives; rows, samples and ?service= carry it', () => {
    const t = setup(catalogue('a=198.18.1.2/32:80'));
    const a1 = t.open(DEST_A);
    const b1 = t.open(DEST_B);
    const a2 = t.open(DEST_A);
    expect(t.registry.rows().sort((x, y) => x.id - y.id).map((r) => [r.id, r.service])).toEqual([
      [a1, 'a'],
      [b1, 'other'],
      [a2, 'a'],
    ]);
    expect(t.samples()).toEqual([
      { state: State.ESTABLISHED, service: 0 },
      { state: State.ESTABLISHED, service: 1 },
      { state: State.ESTABLISHED, service: 1 },
    ]);
    const page = (service: string) => t.registry.page({ filter: { service }, afterId: 0, limit: 100 }).rows.map((r) => r.id);
    expect(page('a')).toEqual([a1, a2]);
    expect(page('other')).toEqual([b1]);
    expect(page('nobody')).toEqual([]);
    expect(t.registry.serviceOfId(a1)).toBe('a');
    expect(t.registry.serviceOfId(b1)).toBe('other');
    expect(t.registry.serviceOfId(9999)).toBeNull();
  });

  it('a TIME-WAIT record keeps the service of its connection', () => {
    const t = setup(catalogue('a=198.18.1.2/32:80'));
    const id = t.open(DEST_A);
    t.toTimeWait(id);
    expect(t.samples()).toEqual([{ state: State.TIME_WAIT, service: 1 }]);
    expect(t.registry.rows()[0]).toMatchObject({ id, state: 'TIME_WAIT', service: 'a' });
  });

  it('a change of services renames live connections by name (columns rewritten), a name gone becomes other', () => {
    const t = setup(catalogue('a=198.18.1.2/32:80', 'b=198.18.1.3/32:80'));
    const a = t.open(DEST_A);
    const b = t.open(DEST_B);
    t.toTimeWait(a);
    // `a` moves to index 2 and `b` goes away; the classifier of the new services is not applied to open connections.
    t.services.replace(catalogue('fresh=198.18.1.3/32', 'a=198.18.1.2/32:80'));
    expect(t.registry.rows().sort((x, y) => x.id - y.id).map((r) => [r.id, r.service])).toEqual([
      [a, 'a'],
      [b, 'other'],
    ]);
    expect(t.samples()).toEqual([
      { state: State.ESTABLISHED, service: 0 },
      { state: State.TIME_WAIT, service: 2 },
    ]);
    // New connections are classified under the new services.
    const c = t.open(DEST_B);
    expect(t.registry.rows().find((r) => r.id === c)!.service).toBe('fresh');
  });

  it('tells closes and resets by service index, and describes a connection during its closed event', () => {
    const t = setup(catalogue('a=198.18.1.2/32:80'));
    const seen: Array<[number, string | null, string | undefined]> = [];
    t.hub.subscribe({
      closed: (conn: ConnIdentity) => seen.push([conn.id, t.registry.serviceOf(conn), t.registry.describe(conn)?.service]),
    });
    const a = t.open(DEST_A);
    const b = t.open(DEST_B);
    t.reset(a);
    t.reset(b);
    expect(seen).toEqual([
      [a, 'a', 'a'],
      [b, 'other', 'other'],
    ]);
    expect(t.sink.closes).toEqual([
      [1, 'reset_received'],
      [0, 'reset_received'],
    ]);
    expect(t.sink.resets).toEqual([
      [1, 'received'],
      [0, 'received'],
    ]);
    // Once the event is over the connection is gone from the table.
    expect(t.registry.serviceOfId(a)).toBeNull();
  });
});
