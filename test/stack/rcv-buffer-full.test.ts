/**
 * The `rcv_buffer_full` drop reason through the whole stack: an owner that does not consume
 * (a stalled upstream) lets delivered bytes pile up in the receive buffer, and a peer that keeps
 * sending past holes fills the reassembly queue (MAX_OOO_RANGES separate ranges); the next
 * segment that would need another range is dropped, counted as `rcv_buffer_full` in
 * synfin_tcp_dropped_segments_total and answered with a duplicate ACK, and the connection lives on.
 */
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/observability/metrics.js';
import { MAX_OOO_RANGES } from '../../src/tcp/rcv.js';
import { TcpFlag } from '../../src/wire/segment.js';
import { State } from '../../src/tcp/state.js';
import { StackFuzzHarness, type PacketOp } from '../fuzz/stack-harness.js';

const counters = {
  segmentsIn: 0,
  segmentsOut: 0,
  bytesClientToUpstream: 0,
  bytesUpstreamToClient: 0,
  tunRxPackets: 0,
  tunRxBytes: 0,
  tunTxPackets: 0,
  tunTxBytes: 0,
};

function packet(over: Partial<PacketOp>): PacketOp {
  return {
    op: 'packet',
    flow: 0,
    auto: false,
    flags: TcpFlag.ACK,
    seq: { kind: 'rcvnxt', delta: 0 },
    ack: { kind: 'sndmax', delta: 0 },
    window: 65535,
    payloadLen: 0,
    mss: 1460,
    wscale: -1,
    sackPermitted: true,
    ts: 'none',
    tsRandom: 0,
    sack: [],
    mutation: { kind: 'none' },
    fixChecksums: false,
    known: false,
    ...over,
  };
}

async function droppedFullCount(text: Promise<string>): Promise<number> {
  const m = /^synfin_tcp_dropped_segments_total\{reason="rcv_buffer_full"\} (\d+)$/m.exec(await text);
  expect(m, 'the rcv_buffer_full series is exported').not.toBeNull();
  return Number(m![1]);
}

describe('rcv_buffer_full', () => {
  it('a stalled owner and a peer sending past holes: the segment that needs one range too many is dropped and counted', async () => {
    const h = new StackFuzzHarness({ ownersConsume: 'never', rcvBufBytes: 64 * 1024 });
    const metrics = createMetrics(h.hub, { clock: h.clock, forEachConnection: () => {}, counters: () => counters }, '0.0.0-test');
    // Handshake: SYN, the forwarder accepts, the final ACK.
    h.run(packet({ flags: TcpFlag.SYN, seq: { kind: 'isn' }, ack: { kind: 'random', value: 0 } }));
    h.run({ op: 'decide', index: 0, how: 'accept' });
    h.run(packet({ seq: { kind: 'isn1' }, ack: { kind: 'iss1' } }));
    const owner = h.ownerOf(0)!;
    // The peer's bytes by offset from its ISN + 1 (the stack's ACKs are delayed: its last ACK is
    // not where the next byte goes).
    const isn = h.flows[0]!.isn;
    const data = (offset: number, len: number): PacketOp =>
      packet({ flags: TcpFlag.ACK | TcpFlag.PSH, seq: { kind: 'random', value: (isn + 1 + offset) >>> 0 }, payloadLen: len });
    expect(owner.conn?.state).toBe(State.ESTABLISHED);

    // 20 KB in order: delivered to the owner, which never consumes them.
    for (let i = 0; i < 20; i++) h.run(data(1000 * i, 1000));
    expect(owner.received).toBe(20_000);
    expect(owner.unconsumed).toBe(20_000);
    expect(owner.conn!.receiveBuffered).toBeGreaterThanOrEqual(20_000);
    const window = owner.conn!.receiveWindow;
    expect(window).toBeLessThanOrEqual(64 * 1024 - 20_000);

    // MAX_OOO_RANGES separate one-byte pieces above RCV.NXT, all inside the window: stored.
    for (let i = 0; i < MAX_OOO_RANGES; i++) h.run(data(20_000 + 100 + 100 * i, 1));
    expect(h.drops.get('rcv_buffer_full') ?? 0).toBe(0);
    expect(await droppedFullCount(metrics.registry.metrics())).toBe(0);
    h.run({ op: 'advance', ms: 500 }); // any delayed ACK goes out
    const ackNo = h.flows[0]!.stackAck;
    expect(ackNo).toBe((isn + 1 + 20_000) >>> 0);
    const sent = h.link.sent;

    // One more separate piece, still inside the window: no range left, dropped and counted.
    const at = 100 + 100 * MAX_OOO_RANGES;
    expect(at).toBeLessThan(window);
    h.run(data(20_000 + at, 1));
    expect(h.drops.get('rcv_buffer_full')).toBe(1);
    expect(await droppedFullCount(metrics.registry.metrics())).toBe(1);
    // Answered with a duplicate ACK (RFC 5681 §4.2), RCV.NXT unchanged; the connection lives on.
    expect(h.link.sent).toBe(sent + 1);
    expect(h.flows[0]!.stackAck).toBe(ackNo);
    expect(owner.conn?.state).toBe(State.ESTABLISHED);

    // Filling the hole delivers the stored pieces, not the dropped one: up to the last stored
    // range's end (100 + 100 × 31 + 1), and no further.
    h.run(data(20_000, 100 + 100 * (MAX_OOO_RANGES - 1)));
    expect(owner.received).toBe(20_000 + 100 + 100 * (MAX_OOO_RANGES - 1) + 1);
    expect(h.drops.get('rcv_buffer_full')).toBe(1);
    h.drain();
  });
});
