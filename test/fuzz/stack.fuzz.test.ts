/**
 * Property tests over the whole stack (not just the codecs, which test/wire covers): random and
 * mutated packets, interleaved with the forwarder's decisions, the owners' writes, closes and
 * aborts and the passing of time, never throw, never grow the table or the buffers beyond their
 * bounds, and every rejection is counted as a drop with a reason (the oracle is in
 * stack-harness.ts). The long-running version of the same is `npm run fuzz`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TcpFlag } from '../../src/tcp/segment.js';
import { opArb, packetOpArb, StackFuzzHarness, type Op, type PacketOp } from './stack-harness.js';

/** A handshake the fuzzer then builds on: SYN, accept, final ACK (all on flow `flow`). */
function handshake(flow: number): Op[] {
  const base: Omit<PacketOp, 'flags' | 'seq' | 'ack'> = {
    op: 'packet',
    flow,
    auto: false,
    window: 65535,
    payloadLen: 0,
    mss: 1460,
    wscale: 7,
    sackPermitted: true,
    ts: 'fresh',
    tsRandom: 0,
    sack: [],
    mutation: { kind: 'none' },
    fixChecksums: false,
  };
  return [
    { ...base, flags: TcpFlag.SYN, seq: { kind: 'isn' }, ack: { kind: 'random', value: 0 } },
    { op: 'decide', index: 0, how: 'accept' },
    { ...base, flags: TcpFlag.ACK, seq: { kind: 'isn1' }, ack: { kind: 'iss1' } },
  ];
}

describe('stack under fuzzed input', () => {
  it('never throws, stays within its bounds, counts every rejection, and drains to an empty table', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 120 }), (ops) => {
        const h = new StackFuzzHarness();
        for (const op of ops) h.run(op);
        h.drain();
      }),
      { numRuns: 300 },
    );
  });

  it('the same from established connections: mutated segments against live state', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 150 }), (ops) => {
        const h = new StackFuzzHarness();
        for (const op of [...handshake(0), ...handshake(4), ...handshake(1)]) h.run(op);
        for (const op of ops) h.run(op);
        h.drain();
      }),
      { numRuns: 300 },
    );
  });

  it('a flood of SYNs from many flows never exceeds --max-connections or the backlog, and drains', () => {
    const syn = packetOpArb.map((p): Op => ({ ...p, flags: TcpFlag.SYN, mutation: { kind: 'none' } }));
    fc.assert(
      fc.property(
        fc.array(fc.oneof({ weight: 8, arbitrary: syn }, { weight: 2, arbitrary: opArb }), { minLength: 10, maxLength: 200 }),
        (ops) => {
          const h = new StackFuzzHarness({ synBacklog: 2, maxConnections: 4 });
          for (const op of ops) h.run(op);
          h.drain();
        },
      ),
      { numRuns: 150 },
    );
  });

  it('the oracle sees the paths it is meant to check (the fuzzer reaches live connections)', () => {
    // Guard against a generator that only ever produces garbage: over a fixed sample, segments
    // must reach live connections and be both accepted and rejected there, SYNs must be offered,
    // and the parser must reject some mutated packets.
    const h = new StackFuzzHarness();
    for (const op of [...handshake(0), ...handshake(4)]) h.run(op);
    for (const op of fc.sample(opArb, { numRuns: 3000, seed: 42 })) h.run(op);
    h.drain();
    const seen = (k: string) => h.outcomes.get(k) ?? 0;
    expect(seen('conn:accepted')).toBeGreaterThan(50);
    expect([...h.outcomes.keys()].filter((k) => k.startsWith('conn:') && k !== 'conn:accepted').length).toBeGreaterThan(2);
    expect(seen('none:syn')).toBeGreaterThan(5);
    expect(seen('parse:checksum')).toBeGreaterThan(5);
  });
});
