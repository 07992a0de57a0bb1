/**
 * Property tests over the whole stack (not just the codecs, which test/wire covers): random and
 * mutated packets, interleaved with the forwarder's decisions, the owners' writes, closes and
 * aborts and the passing of time, never throw, never grow the table or the buffers beyond their
 * bounds, and every rejection is counted as a drop with a reason (the oracle is in
 * stack-harness.ts). The long-running version of the same is `npm run fuzz`.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { TcpFlag } from '../../src/wire/segment.js';
import { opArb, packetOpArb, RAW_MAX_LENGTH, StackFuzzHarness, type Op, type PacketOp } from './stack-harness.js';

/**
 * What every harness of this file saw, summed: the operations run (npm test runs at least
 * MIN_OPS of them) and the coverage counters (see StackFuzzHarness.coverage).
 */
const MIN_OPS = 100_000;
const total = { ops: 0, harnesses: 0, maxPacketLength: 0, maxRawLength: 0, rawTcp: 0, rawTcpOver1000: 0, knownGoodBadChecksum: 0, connAccepted: 0 };
function account(h: StackFuzzHarness, ops: number): void {
  total.ops += ops;
  total.harnesses++;
  const c = h.coverage;
  total.maxPacketLength = Math.max(total.maxPacketLength, c.maxPacketLength);
  total.maxRawLength = Math.max(total.maxRawLength, c.maxRawLength);
  total.rawTcp += c.rawTcp;
  total.rawTcpOver1000 += c.rawTcpOver1000;
  total.knownGoodBadChecksum += c.knownGoodBadChecksum;
  total.connAccepted += h.outcomes.get('conn:accepted') ?? 0;
}
const started = Date.now();
afterAll(() => {
  // The figures behind the last test's assertions, for the log.
  console.log(`[stack fuzz] ${JSON.stringify({ ...total, seconds: (Date.now() - started) / 1000 })}`);
});

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
    known: false,
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
      // size 'max': without it fast-check draws at most ~12 operations whatever maxLength says.
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 200, size: 'max' }), (ops) => {
        const h = new StackFuzzHarness();
        for (const op of ops) h.run(op);
        h.drain();
        account(h, ops.length);
      }),
      { numRuns: 200 },
    );
  });

  it('the same from established connections: mutated segments against live state', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 200, size: 'max' }), (ops) => {
        const h = new StackFuzzHarness();
        for (const op of [...handshake(0), ...handshake(4), ...handshake(1)]) h.run(op);
        for (const op of ops) h.run(op);
        h.drain();
        account(h, ops.length);
      }),
      { numRuns: 200 },
    );
  });

  it('a flood of SYNs from many flows never exceeds --max-connections or the backlog, and drains', () => {
    const syn = packetOpArb.map((p): Op => ({ ...p, flags: TcpFlag.SYN, mutation: { kind: 'none' } }));
    fc.assert(
      fc.property(
        fc.array(fc.oneof({ weight: 8, arbitrary: syn }, { weight: 2, arbitrary: opArb }), { minLength: 10, maxLength: 200, size: 'max' }),
        (ops) => {
          const h = new StackFuzzHarness({ synBacklog: 2, maxConnections: 4 });
          for (const op of ops) h.run(op);
          h.drain();
          account(h, ops.length);
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
    account(h, 3000);
    const seen = (k: string) => h.outcomes.get(k) ?? 0;
    expect(seen('conn:accepted')).toBeGreaterThan(50);
    expect([...h.outcomes.keys()].filter((k) => k.startsWith('conn:') && k !== 'conn:accepted').length).toBeGreaterThan(2);
    expect(seen('none:syn')).toBeGreaterThan(5);
    expect(seen('parse:checksum')).toBeGreaterThan(5);
  });

  it('at volume: one stack through epochs of operations, each drained to an empty table', () => {
    // What `npm run fuzz` does for minutes, briefly: state that accumulates across connections
    // (the table, timers, TIME-WAIT, the flow models) over tens of thousands of operations.
    const seed = Date.now() % 2 ** 31;
    const epochs = 40;
    const perEpoch = 2000;
    let h = new StackFuzzHarness();
    for (let epoch = 0; epoch < epochs; epoch++) {
      if (epoch === 25) {
        account(h, 0);
        h = new StackFuzzHarness({ synBacklog: 1, maxConnections: 3 });
      }
      const ops = fc.sample(fc.array(opArb, { minLength: perEpoch, maxLength: perEpoch }), { numRuns: 1, seed: seed + epoch })[0]!;
      for (let i = 0; i < ops.length; i++) {
        try {
          h.run(ops[i]!);
        } catch (err) {
          throw new Error(`seed ${seed} epoch ${epoch} op ${i}: ${(err as Error).message}`, { cause: err });
        }
      }
      h.drain();
      h.resetModels();
      total.ops += ops.length;
    }
    account(h, 0);
  });

  it(`ran at least ${MIN_OPS} operations, with full-size packets and past the checksum check`, () => {
    // The guard against properties that silently shrink back to tiny inputs (fast-check's default
    // size draws ~10 elements: raw packets of 10 bytes, a dozen operations per run).
    expect(total.ops).toBeGreaterThanOrEqual(MIN_OPS);
    // Raw packets up to the MTU and beyond, some of them full-size random segments that the
    // parser accepts as TCP (valid lengths and checksums) and the stack then handles.
    expect(total.maxRawLength).toBeGreaterThan(1500);
    expect(total.maxRawLength).toBeLessThanOrEqual(RAW_MAX_LENGTH);
    expect(total.rawTcp).toBeGreaterThan(100);
    expect(total.rawTcpOver1000).toBeGreaterThan(20);
    // Built segments with payloads past one MSS (the writer's packets, jumbo-sized).
    expect(total.maxPacketLength).toBeGreaterThan(8000);
    // The checksum-known-good path (a vnet header's partial checksum): packets whose TCP
    // checksum is wrong reach the stack.
    expect(total.knownGoodBadChecksum).toBeGreaterThan(100);
    expect(total.connAccepted).toBeGreaterThan(1000);
  });
});
