/**
 * A fuzzing harness around the whole stack (src/stack/stack.ts): an in-memory link, a manual
 * clock, a forwarder whose decisions are fuzz operations, and owners (the proxy's role) whose
 * writes, closes and aborts are fuzz operations too. Packets are built with the real writers of
 * src/wire (so they reach deep into the state machine: sequence and acknowledgment numbers are
 * chosen relative to what the stack last sent on that flow), then optionally mutated.
 *
 * After every packet the harness checks an accounting oracle:
 * - a packet the parser rejects (checksum, malformed, fragment, unsupported) is counted as exactly
 *   one drop with the matching reason; a packet of another protocol (UDP, ICMP) is not ours and
 *   changes nothing;
 * - a TCP segment for a live connection is either accepted by `TcpConn.process` or rejected with a
 *   reason that was counted;
 * - a TCP segment for a pending SYN, a TIME-WAIT record or no connection is either counted as a
 *   drop or is one of the few things that are not rejections (a new SYN offered to the forwarder
 *   or answered with a cookie, a valid cookie ACK, the app's RST cancelling its SYN, a
 *   retransmitted FIN in TIME-WAIT, a SYN opening a new incarnation over TIME-WAIT);
 * and after every operation the resource bounds: connections ≤ --max-connections, buffers within
 * their configured sizes. `drain()` aborts everything and runs the clock past every timeout: the
 * table must then be empty.
 *
 * Used by the property tests (test/fuzz/stack.fuzz.test.ts) and the long-running target
 * (`npm run fuzz`, test/fuzz/stack-long.fuzz.ts).
 */
import fc from 'fast-check';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';
import type { LinkTx } from '../../src/wire/link.js';
import { COL_CREATED_AT, COL_LAST_ACTIVITY_AT, COL_STATE_SINCE, ROW_PENDING_SYN, ROW_WIDTH, Stack, type PendingSyn, type RejectHow } from '../../src/stack/stack.js';
import { TcpConn, type ConnHandler } from '../../src/tcp/conn.js';
import { defaultTcpConfig } from '../../src/tcp/defaults.js';
import type { DropReason } from '../../src/tcp/events.js';
import { OutSegment, Segment, TcpFlag } from '../../src/wire/segment.js';
import { seqAdd, seqGt } from '../../src/tcp/seq.js';
import { State } from '../../src/tcp/state.js';
import { checksum, pseudoSumV4At, pseudoSumV6At } from '../../src/wire/checksum.js';
import { FlowKey, PacketParser, type ParseVerdict, writeTcpPacket, finishTcpChecksum } from '../../src/wire/packet.js';

// ------------------------------------------------------------------------------------- flows

/** The app-side endpoints the fuzzer talks from: a few IPv4 flows, one IPv6, two sharing a port pair. */
const FLOWS: ReadonlyArray<{ family: 4 | 6; src: number[]; dst: number[]; srcPort: number; dstPort: number }> = [
  { family: 4, src: [0, 0, 0, 0xc6120001], dst: [0, 0, 0, 0xc6120102], srcPort: 40000, dstPort: 80 },
  { family: 4, src: [0, 0, 0, 0xc6120001], dst: [0, 0, 0, 0xc6120102], srcPort: 40001, dstPort: 80 },
  { family: 4, src: [0, 0, 0, 0xc6120001], dst: [0, 0, 0, 0xc6120203], srcPort: 40000, dstPort: 443 },
  { family: 4, src: [0, 0, 0, 0xc6120005], dst: [0, 0, 0, 0xc6120102], srcPort: 65535, dstPort: 1 },
  { family: 6, src: [0xfd000000, 0, 0, 1], dst: [0xfd000000, 0, 0, 2], srcPort: 50000, dstPort: 8080 },
  { family: 6, src: [0xfd000000, 0, 0, 1], dst: [0xfd000000, 0, 0, 2], srcPort: 50001, dstPort: 8080 },
];
export const FLOW_COUNT = FLOWS.length;

/** What the fuzzer knows of one flow: its own ISN and what the stack last said on it. */
class FlowModel {
  readonly family: 4 | 6;
  readonly src: Uint32Array;
  readonly dst: Uint32Array;
  readonly srcPort: number;
  readonly dstPort: number;
  /** The app's ISN (fixed per flow; SYNs may also use others). */
  readonly isn: number;
  /** The stack's last ACK field on this flow (its RCV.NXT), or -1 before it said anything. */
  stackAck = -1;
  /** The highest sequence number the stack has used (SND.MAX), or -1. */
  stackMax = -1;
  /** The stack's last SYN-ACK sequence number (its ISS, or a cookie), or -1. */
  stackIss = -1;
  /** The stack's last TSval (for TSecr), 0 before any. */
  stackTsVal = 0;
  /** The app's timestamp clock: fresh TSvals grow from here. */
  tsClock: number;

  constructor(i: number) {
    const f = FLOWS[i]!;
    this.family = f.family;
    this.src = Uint32Array.from(f.src);
    this.dst = Uint32Array.from(f.dst);
    this.srcPort = f.srcPort;
    this.dstPort = f.dstPort;
    // Next to the wrap for some flows (smoltcp's REMOTE_SEQ habit).
    this.isn = i % 2 === 0 ? (0xffffff00 + i) >>> 0 : 1000 * (i + 1);
    this.tsClock = 0x7fffff00 + i * 1000;
  }

  matchesReply(key: FlowKey): boolean {
    return (
      key.family === this.family &&
      key.srcPort === this.dstPort &&
      key.dstPort === this.srcPort &&
      key.src[0] === this.dst[0] && key.src[1] === this.dst[1] && key.src[2] === this.dst[2] && key.src[3] === this.dst[3] &&
      key.dst[0] === this.src[0] && key.dst[1] === this.src[1] && key.dst[2] === this.src[2] && key.dst[3] === this.src[3]
    );
  }

  matchesKey(key: { family: 4 | 6; remote: Uint32Array; remotePort: number; local: Uint32Array; localPort: number }): boolean {
    return (
      key.family === this.family &&
      key.remotePort === this.srcPort &&
      key.localPort === this.dstPort &&
      key.remote[0] === this.src[0] && key.remote[1] === this.src[1] && key.remote[2] === this.src[2] && key.remote[3] === this.src[3] &&
      key.local[0] === this.dst[0] && key.local[1] === this.dst[1] && key.local[2] === this.dst[2] && key.local[3] === this.dst[3]
    );
  }
}

// ------------------------------------------------------------------------------------- operations

export type SeqChoice =
  | { kind: 'isn' }
  | { kind: 'isn1' }
  | { kind: 'rcvnxt'; delta: number }
  | { kind: 'random'; value: number };

export type AckChoice =
  | { kind: 'sndmax'; delta: number }
  | { kind: 'iss1' }
  | { kind: 'random'; value: number };

export type Mutation =
  | { kind: 'none' }
  | { kind: 'flip'; at: Array<{ pos: number; xor: number }> }
  | { kind: 'truncate'; keep: number }
  | { kind: 'extend'; extra: number[] }
  /** IPv6 only: extension headers between the IPv6 header and TCP (hop-by-hop, routing, fragment, destination options). */
  | { kind: 'v6ext'; chain: Array<{ type: number; a: number; b: number }> };

export interface PacketOp {
  op: 'packet';
  flow: number;
  /**
   * When set, the flags, sequence and acknowledgment numbers (and timestamps) are what a
   * well-behaved peer would send next on this flow (SYN, final ACK, data at RCV.NXT, FIN),
   * so a run spends most of its time inside live connections; mutations still apply.
   */
  auto: boolean;
  flags: number;
  seq: SeqChoice;
  ack: AckChoice;
  window: number;
  payloadLen: number;
  mss: number;
  wscale: number;
  sackPermitted: boolean;
  ts: 'none' | 'fresh' | 'stale' | 'random';
  tsRandom: number;
  sack: number[];
  mutation: Mutation;
  /** Recompute the checksums after mutating, so the mutation gets past the parser. */
  fixChecksums: boolean;
  /**
   * Deliver as the link does when the vnet header says the kernel checksummed the packet
   * (`checksumKnownGood`): the TCP checksum is not verified, so a mutation that breaks it still
   * reaches the TCP header checks and the state machine.
   */
  known: boolean;
}

/**
 * Random bytes of any length up to a jumbo-ish MTU. `shape` other than 'noise' gives them an
 * IPv4 or IPv6 header of one of the fuzzer's flows (addresses and ports, TCP as the protocol,
 * optionally consistent lengths, a 20-byte TCP header and valid checksums), so full-size random
 * segments get past the parser into the table and the state machine.
 */
export interface RawOp {
  op: 'raw';
  bytes: Uint8Array;
  shape: 'noise' | 'v4' | 'v6';
  flow: number;
  fixLengths: boolean;
  /** Data offset 5: no options, so the random bytes are flags, numbers and payload. */
  plainHeader: boolean;
  fixChecksums: boolean;
  known: boolean;
}

export type Op =
  | PacketOp
  | RawOp
  | { op: 'advance'; ms: number }
  | { op: 'owner'; flow: number; action: 'write' | 'close' | 'abort' | 'consume'; bytes: number }
  | { op: 'decide'; index: number; how: 'accept' | RejectHow | 'quiet' };

const u32 = fc.integer({ min: 0, max: 0xffffffff });

const seqChoice: fc.Arbitrary<SeqChoice> = fc.oneof(
  { weight: 2, arbitrary: fc.constant<SeqChoice>({ kind: 'isn' }) },
  { weight: 2, arbitrary: fc.constant<SeqChoice>({ kind: 'isn1' }) },
  {
    weight: 8,
    arbitrary: fc
      .oneof(fc.constant(0), fc.integer({ min: -3000, max: 3000 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }))
      .map((delta): SeqChoice => ({ kind: 'rcvnxt', delta })),
  },
  { weight: 1, arbitrary: u32.map((value): SeqChoice => ({ kind: 'random', value })) },
);

const ackChoice: fc.Arbitrary<AckChoice> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .oneof(fc.constant(0), fc.integer({ min: -70000, max: 3000 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }))
      .map((delta): AckChoice => ({ kind: 'sndmax', delta })),
  },
  { weight: 2, arbitrary: fc.constant<AckChoice>({ kind: 'iss1' }) },
  { weight: 1, arbitrary: u32.map((value): AckChoice => ({ kind: 'random', value })) },
);

const F = TcpFlag;
const flagsArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      F.SYN,
      F.ACK,
      F.ACK | F.PSH,
      F.ACK | F.FIN,
      F.RST,
      F.RST | F.ACK,
      F.SYN | F.ACK,
      F.ACK | F.PSH | F.FIN,
      F.SYN | F.FIN,
      F.ACK | F.URG,
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xff }) },
);

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Mutation>({ kind: 'none' }) },
  {
    weight: 3,
    arbitrary: fc
      .array(fc.record({ pos: fc.nat({ max: 100 }), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 4 })
      .map((at): Mutation => ({ kind: 'flip', at })),
  },
  { weight: 1, arbitrary: fc.nat({ max: 80 }).map((keep): Mutation => ({ kind: 'truncate', keep })) },
  { weight: 1, arbitrary: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 16, size: 'max' }).map((extra): Mutation => ({ kind: 'extend', extra })) },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.record({ type: fc.constantFrom(0, 43, 44, 60), a: fc.nat({ max: 255 }), b: fc.nat({ max: 0xffff }) }), { minLength: 1, maxLength: 3 })
      .map((chain): Mutation => ({ kind: 'v6ext', chain })),
  },
);

export const packetOpArb: fc.Arbitrary<PacketOp> = fc.record({
  op: fc.constant('packet' as const),
  flow: fc.nat({ max: FLOW_COUNT - 1 }),
  auto: fc.boolean(),
  flags: flagsArb,
  seq: seqChoice,
  ack: ackChoice,
  window: fc.oneof(fc.constant(0), fc.constant(65535), fc.integer({ min: 0, max: 65535 })),
  payloadLen: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 1460 }) }, { weight: 1, arbitrary: fc.integer({ min: 1461, max: 9000 }) }),
  mss: fc.oneof(fc.constant(-1), fc.constant(1460), fc.integer({ min: 0, max: 65535 })),
  wscale: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 20 })),
  sackPermitted: fc.boolean(),
  ts: fc.constantFrom('none' as const, 'fresh' as const, 'fresh' as const, 'stale' as const, 'random' as const),
  tsRandom: u32,
  sack: fc.array(fc.integer({ min: -5000, max: 70000 }), { maxLength: 4 }),
  mutation: mutationArb,
  fixChecksums: fc.boolean(),
  known: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

/** Longest raw packet drawn: past a 1500-byte MTU (fast-check draws ~10 bytes unless `size` says otherwise). */
export const RAW_MAX_LENGTH = 1600;

export const rawOpArb: fc.Arbitrary<RawOp> = fc.record({
  op: fc.constant('raw' as const),
  bytes: fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: RAW_MAX_LENGTH, size: 'max' }),
    // Full-size frames on their own (the line above favours short ones).
    fc.integer({ min: 1000, max: RAW_MAX_LENGTH }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
  ),
  shape: fc.constantFrom('noise' as const, 'v4' as const, 'v4' as const, 'v6' as const),
  flow: fc.nat({ max: FLOW_COUNT - 1 }),
  fixLengths: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  plainHeader: fc.boolean(),
  fixChecksums: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  known: fc.boolean(),
});

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 12, arbitrary: packetOpArb },
  { weight: 2, arbitrary: rawOpArb },
  {
    weight: 2,
    arbitrary: fc
      .oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 200_000 }))
      .map((ms): Op => ({ op: 'advance', ms })),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        flow: fc.nat({ max: FLOW_COUNT - 1 }),
        action: fc.constantFrom('write' as const, 'write' as const, 'close' as const, 'abort' as const, 'consume' as const),
        bytes: fc.integer({ min: 1, max: 100_000 }),
      })
      .map((o): Op => ({ op: 'owner', ...o })),
  },
  {
    weight: 5,
    arbitrary: fc
      .record({
        index: fc.nat({ max: 7 }),
        how: fc.constantFrom('accept' as const, 'accept' as const, 'accept' as const, 'refused' as const, 'unreachable' as const, 'prohibited' as const, 'silent' as const, 'quiet' as const),
      })
      .map((o): Op => ({ op: 'decide', ...o })),
  },
);

// ------------------------------------------------------------------------------------- the harness

/** Thrown when an invariant fails; carries what is needed to reproduce. */
export class InvariantError extends Error {
  readonly code = 'ERR_FUZZ_INVARIANT';
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

/** A link that parses what the stack sends just enough to keep the flow models current. */
class ModelLink implements LinkTx {
  readonly vnetHdr = false;
  readonly txSlotSize = 70_000;
  readonly txBuffer = Buffer.alloc(this.txSlotSize);
  /** Packets transmitted (TCP and ICMP). */
  sent = 0;
  private readonly parser = new PacketParser();
  private readonly seg = new Segment();
  private readonly key = new FlowKey();

  constructor(private readonly flows: FlowModel[]) {}

  txReserve(): number {
    return 0;
  }
  txCommit(offset: number, length: number): void {
    this.sent++;
    const verdict = this.parser.parse(this.txBuffer, offset, length, false, this.seg, this.key);
    if (verdict !== 'tcp') {
      if (verdict !== 'not_tcp') throw new InvariantError(`the stack sent a packet its own parser rejects (${verdict})`);
      return;
    }
    const seg = this.seg;
    for (const f of this.flows) {
      if (!f.matchesReply(this.key)) continue;
      if (seg.flags & TcpFlag.RST) return;
      if (seg.flags & TcpFlag.SYN) {
        f.stackIss = seg.seq;
        f.stackMax = seg.seq;
      }
      const end = seqAdd(seg.seq, seg.segLen);
      if (f.stackMax === -1 || seqGt(end, f.stackMax)) f.stackMax = end;
      if (seg.flags & TcpFlag.ACK) f.stackAck = seg.ack;
      if (seg.options.tsPresent) f.stackTsVal = seg.options.tsVal;
      return;
    }
  }
  txFlush(): void {}
  onTxDrain(): void {}
}

/** The proxy's role for one accepted connection: it reads, writes, closes and aborts on command. */
class Owner implements ConnHandler {
  conn: TcpConn | null = null;
  closeCalled = false;
  /** write() returned false: wait for onSendSpace, as the proxy pauses its socket. */
  blocked = false;
  unconsumed = 0;
  received = 0;
  constructor(
    private readonly harness: StackFuzzHarness,
    readonly flow: number,
    /** Consume data as it arrives (a fast upstream) or only on a 'consume' op (a slow one). */
    private readonly autoConsume: boolean,
  ) {}
  onEstablished(): void {}
  onData(conn: TcpConn, data: Buffer): void {
    this.received += data.length;
    if (this.autoConsume) conn.consume(data.length, this.harness.clock.now());
    else this.unconsumed += data.length;
  }
  onFin(): void {}
  onSendSpace(): void {
    this.blocked = false;
  }
  onClosed(conn: TcpConn): void {
    this.harness.ownerClosed(this, conn);
  }
}

type EntryKind = 'none' | 'conn' | 'syn' | 'tw';

/** A drop reason for each parser verdict that is a rejection (src/stack/stack.ts input()). */
const VERDICT_DROP: Partial<Record<ParseVerdict, DropReason>> = {
  checksum: 'checksum',
  malformed: 'malformed',
  fragment: 'unsupported',
  unsupported: 'unsupported',
};

/** Records what TcpConn.process returned for the segment being delivered (the accounting oracle). */
let processProbe: { calls: number; last: DropReason | null } | null = null;
let probeInstalled = false;
function installProcessProbe(): void {
  if (probeInstalled) return;
  probeInstalled = true;
  const original = TcpConn.prototype.process;
  TcpConn.prototype.process = function probedProcess(this: TcpConn, seg: Segment, now: number): DropReason | null {
    const result = original.call(this, seg, now);
    if (processProbe !== null) {
      processProbe.calls++;
      processProbe.last = result;
    }
    return result;
  };
}

export interface HarnessOptions {
  synBacklog: number;
  maxConnections: number;
  mslMs: number;
  rcvBufBytes: number;
  sndBufBytes: number;
  /** Owners consume what arrives: every other one at once ('alternate'), or none ('never'). */
  ownersConsume: 'alternate' | 'never';
}

export const DEFAULT_HARNESS_OPTIONS: HarnessOptions = {
  synBacklog: 3,
  maxConnections: 5,
  mslMs: 2000,
  rcvBufBytes: 64 * 1024,
  sndBufBytes: 64 * 1024,
  ownersConsume: 'alternate',
};

/** Largest single write an owner makes (the send-buffer bound allows one write past the limit). */
const MAX_WRITE = 100_000;

export class StackFuzzHarness {
  readonly clock = new ManualClock(1_000_000);
  readonly hub = new EventHub();
  readonly flows: FlowModel[];
  readonly link: ModelLink;
  readonly stack: Stack;
  readonly opts: HarnessOptions;
  readonly pending: PendingSyn[] = [];
  readonly owners = new Map<TcpConn, Owner>();
  /** Drops by reason, and in total. */
  readonly drops = new Map<DropReason, number>();
  dropTotal = 0;
  offered = 0;
  aborted = 0;
  packets = 0;
  /** Count of packets by how they ended (for the long run's report). */
  readonly outcomes = new Map<string, number>();
  /**
   * Coverage of the input space (so a test can check the generator did not shrink back to tiny
   * inputs): the longest packet and raw packet delivered, raw packets the parser took as TCP
   * (full-size random segments inside the stack), and packets that reached the stack only
   * because the checksum was known good (their TCP checksum is wrong).
   */
  readonly coverage = { maxPacketLength: 0, maxRawLength: 0, rawTcp: 0, rawTcpOver1000: 0, knownGoodBadChecksum: 0 };
  private readonly strictParser = new PacketParser();
  private readonly strictSeg = new Segment();
  private readonly strictKey = new FlowKey();
  private readonly parser = new PacketParser();
  private readonly seg = new Segment();
  private readonly key = new FlowKey();
  private readonly out = new OutSegment();
  private readonly buf = Buffer.alloc(70_000);
  private readonly payload = Buffer.alloc(9000, 0x61);

  constructor(opts: Partial<HarnessOptions> = {}) {
    installProcessProbe();
    this.opts = { ...DEFAULT_HARNESS_OPTIONS, ...opts };
    this.flows = FLOWS.map((_, i) => new FlowModel(i));
    this.link = new ModelLink(this.flows);
    this.hub.subscribe({
      drop: (_c, reason) => {
        this.dropTotal++;
        this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
      },
    });
    this.stack = new Stack({
      link: this.link,
      clock: this.clock,
      tcp: defaultTcpConfig({
        mslMs: this.opts.mslMs,
        rcvBufBytes: this.opts.rcvBufBytes,
        sndBufBytes: this.opts.sndBufBytes,
        keepaliveIdleMs: 60_000,
        keepaliveIntervalMs: 10_000,
        keepaliveProbes: 3,
      }),
      forwarder: {
        onSyn: (req) => {
          this.offered++;
          this.pending.push(req);
        },
        onSynAborted: (req) => {
          this.aborted++;
          const i = this.pending.indexOf(req);
          if (i >= 0) this.pending.splice(i, 1);
        },
      },
      events: this.hub,
      synBacklog: this.opts.synBacklog,
      maxConnections: this.opts.maxConnections,
      setTimer: () => null,
      clearTimer: () => {},
    });
  }

  // ---------------------------------------------------------------- operations

  run(op: Op): void {
    switch (op.op) {
      case 'packet':
        this.deliver(this.build(op), op.known);
        break;
      case 'raw':
        this.deliver(this.buildRaw(op), op.known, true);
        break;
      case 'advance':
        this.clock.advance(op.ms);
        this.stack.runTimers();
        break;
      case 'owner':
        this.ownerOp(op.flow, op.action, op.bytes);
        break;
      case 'decide':
        this.decide(op.index, op.how);
        break;
    }
    this.checkBounds();
  }

  /** Serialize a packet op with the wire writers, then mutate it. */
  build(op: PacketOp): Buffer {
    if (op.auto) op = this.wellBehaved(op);
    const f = this.flows[op.flow]!;
    const out = this.out;
    out.clear();
    out.flags = op.flags & 0xff;
    out.window = op.window;
    switch (op.seq.kind) {
      case 'isn':
        out.seq = f.isn;
        break;
      case 'isn1':
        out.seq = seqAdd(f.isn, 1);
        break;
      case 'rcvnxt':
        out.seq = seqAdd(f.stackAck === -1 ? seqAdd(f.isn, 1) : f.stackAck, op.seq.delta);
        break;
      case 'random':
        out.seq = op.seq.value >>> 0;
        break;
    }
    switch (op.ack.kind) {
      case 'sndmax':
        out.ack = seqAdd(f.stackMax === -1 ? 0 : f.stackMax, op.ack.delta);
        break;
      case 'iss1':
        out.ack = seqAdd(f.stackIss === -1 ? 0 : f.stackIss, 1);
        break;
      case 'random':
        out.ack = op.ack.value >>> 0;
        break;
    }
    const o = out.options;
    if (op.flags & TcpFlag.SYN) {
      if (op.mss >= 0) o.mss = op.mss;
      if (op.wscale >= 0) o.wscale = op.wscale;
      o.sackPermitted = op.sackPermitted;
    }
    switch (op.ts) {
      case 'fresh':
        f.tsClock = (f.tsClock + 1 + (op.tsRandom & 0xff)) >>> 0;
        o.tsPresent = true;
        o.tsVal = f.tsClock;
        o.tsEcr = f.stackTsVal;
        break;
      case 'stale':
        o.tsPresent = true;
        o.tsVal = seqAdd(f.tsClock, -(1 + (op.tsRandom & 0xffff)));
        o.tsEcr = f.stackTsVal;
        break;
      case 'random':
        o.tsPresent = true;
        o.tsVal = op.tsRandom;
        o.tsEcr = (op.tsRandom * 7) >>> 0;
        break;
    }
    if (op.sack.length >= 2 && (op.flags & TcpFlag.SYN) === 0) {
      const base = f.stackMax === -1 ? 0 : f.stackMax;
      const max = o.tsPresent ? 3 : 4;
      let n = 0;
      for (let i = 0; i + 1 < op.sack.length && n < max; i += 2, n++) {
        o.sackBlocks[n * 2] = seqAdd(base, -op.sack[i]!);
        o.sackBlocks[n * 2 + 1] = seqAdd(base, -op.sack[i + 1]!);
      }
      o.sackCount = n;
    }
    const len = op.payloadLen;
    const buf = this.buf;
    const hl = writeTcpPacket(buf, 0, f.family, f.src, f.dst, f.srcPort, f.dstPort, out, len);
    this.payload.copy(buf, hl, 0, len);
    finishTcpChecksum(buf, 0, 'full');
    let pkt: Buffer = buf.subarray(0, hl + len);
    const m = op.mutation;
    switch (m.kind) {
      case 'none':
        return pkt;
      case 'flip':
        for (const { pos, xor } of m.at) if (pos < pkt.length) pkt[pos] = (pkt[pos]! ^ xor) & 0xff;
        break;
      case 'truncate':
        pkt = pkt.subarray(0, Math.min(m.keep, pkt.length));
        break;
      case 'extend': {
        const ext = Buffer.alloc(pkt.length + m.extra.length);
        pkt.copy(ext, 0);
        for (let i = 0; i < m.extra.length; i++) ext[pkt.length + i] = m.extra[i]!;
        pkt = ext;
        break;
      }
      case 'v6ext':
        if (f.family === 6) pkt = withExtensionHeaders(pkt, m.chain);
        break;
    }
    if (op.fixChecksums) fixChecksums(pkt);
    return pkt;
  }

  /** A raw op's bytes, shaped as one of the flows' IP packets unless 'noise' (see RawOp). */
  buildRaw(op: RawOp): Buffer {
    const pkt = Buffer.from(op.bytes);
    if (op.shape === 'noise') return pkt;
    const f = this.flows[op.flow]!;
    if (op.shape === 'v4') {
      if (pkt.length < 40) return pkt;
      pkt[0] = 0x45;
      if (op.fixLengths) pkt.writeUInt16BE(pkt.length, 2);
      pkt.writeUInt16BE(pkt[6]! & 0x40 ? 0x4000 : 0, 6); // DF or nothing: no fragments
      pkt[9] = 6;
      pkt.writeUInt32BE(f.src[3]!, 12);
      pkt.writeUInt32BE(f.dst[3]!, 16);
      pkt.writeUInt16BE(f.srcPort, 20);
      pkt.writeUInt16BE(f.dstPort, 22);
      if (op.plainHeader) pkt[32] = (5 << 4) | (pkt[32]! & 0x0f);
    } else {
      if (pkt.length < 60) return pkt;
      pkt[0] = 0x60 | (pkt[0]! & 0x0f);
      if (op.fixLengths) pkt.writeUInt16BE(pkt.length - 40, 4);
      pkt[6] = 6;
      for (let i = 0; i < 4; i++) {
        pkt.writeUInt32BE(f.src[i]!, 8 + i * 4);
        pkt.writeUInt32BE(f.dst[i]!, 24 + i * 4);
      }
      pkt.writeUInt16BE(f.srcPort, 40);
      pkt.writeUInt16BE(f.dstPort, 42);
      if (op.plainHeader) pkt[52] = (5 << 4) | (pkt[52]! & 0x0f);
    }
    if (op.fixChecksums) fixChecksums(pkt);
    return pkt;
  }

  /** What a well-behaved peer sends next on the op's flow (see PacketOp.auto). */
  private wellBehaved(op: PacketOp): PacketOp {
    const f = this.flows[op.flow]!;
    const kind = this.entryKindOf(f);
    const next: PacketOp = { ...op, auto: false, ts: 'fresh', seq: { kind: 'rcvnxt', delta: 0 }, ack: { kind: 'sndmax', delta: 0 } };
    switch (kind) {
      case 'none':
        next.flags = TcpFlag.SYN;
        next.seq = { kind: 'isn' };
        next.payloadLen = 0;
        break;
      case 'syn':
        next.flags = TcpFlag.SYN;
        next.seq = { kind: 'isn' };
        next.payloadLen = 0;
        break;
      case 'tw':
        next.flags = TcpFlag.ACK;
        next.payloadLen = 0;
        break;
      case 'conn': {
        let conn: TcpConn | null = null;
        for (const c of this.stack.connections()) if (f.matchesKey(c.flow)) conn = c.conn;
        if (conn !== null && conn.state === State.SYN_RECEIVED) {
          next.flags = TcpFlag.ACK;
          next.seq = { kind: 'isn1' };
          next.ack = { kind: 'iss1' };
          next.payloadLen = 0;
        } else {
          next.flags = (op.flags & TcpFlag.FIN) !== 0 && (op.tsRandom & 7) === 0 ? TcpFlag.ACK | TcpFlag.FIN : TcpFlag.ACK | TcpFlag.PSH;
          if (next.payloadLen > 1460) next.payloadLen = 1460;
        }
        break;
      }
    }
    return next;
  }

  private entryKindOf(f: FlowModel): EntryKind {
    const key = this.key;
    key.family = f.family;
    key.src.set(f.src);
    key.dst.set(f.dst);
    key.srcPort = f.srcPort;
    key.dstPort = f.dstPort;
    return this.entryKind(key);
  }

  /** Feed one packet to the stack and check that it was accepted or counted as a drop. */
  deliver(pkt: Buffer, known = false, raw = false): void {
    this.packets++;
    const verdict = this.parser.parse(pkt, 0, pkt.length, known, this.seg, this.key);
    const cov = this.coverage;
    if (pkt.length > cov.maxPacketLength) cov.maxPacketLength = pkt.length;
    if (raw) {
      if (pkt.length > cov.maxRawLength) cov.maxRawLength = pkt.length;
      if (verdict === 'tcp') {
        cov.rawTcp++;
        if (pkt.length > 1000) cov.rawTcpOver1000++;
      }
    }
    if (known && verdict === 'tcp' && this.strictParser.parse(pkt, 0, pkt.length, false, this.strictSeg, this.strictKey) === 'checksum') {
      cov.knownGoodBadChecksum++;
    }
    const kindBefore: EntryKind = verdict === 'tcp' ? this.entryKind(this.key) : 'none';
    const flags = this.seg.flags;
    const drops0 = this.dropTotal;
    const offered0 = this.offered;
    const aborted0 = this.aborted;
    const sent0 = this.link.sent;
    const probe = { calls: 0, last: null as DropReason | null };
    processProbe = probe;
    try {
      this.stack.input(pkt, 0, pkt.length, known);
      this.stack.flush();
    } finally {
      processProbe = null;
    }
    const dropped = this.dropTotal - drops0;
    const offered = this.offered - offered0;
    const replied = this.link.sent - sent0;
    let outcome: string;
    if (verdict !== 'tcp') {
      const reason = VERDICT_DROP[verdict];
      if (reason === undefined) {
        // Not TCP (UDP, ICMP...): not ours, nothing may change.
        if (dropped !== 0 || offered !== 0 || replied !== 0) throw new InvariantError(`a ${verdict} packet changed something`);
        outcome = 'not_tcp';
      } else {
        if (dropped !== 1 || (this.drops.get(reason) ?? 0) === 0) {
          throw new InvariantError(`a packet the parser rejects as ${verdict} was counted ${dropped} times (expected once as ${reason})`);
        }
        outcome = `parse:${verdict}`;
      }
    } else {
      switch (kindBefore) {
        case 'conn':
          if (probe.calls !== 1) throw new InvariantError(`a segment for a live connection reached TcpConn.process ${probe.calls} times`);
          if (probe.last !== null && dropped === 0) throw new InvariantError(`TcpConn.process rejected a segment (${probe.last}) without counting a drop`);
          outcome = probe.last === null ? 'conn:accepted' : `conn:${probe.last}`;
          break;
        case 'syn': {
          const cancelled = this.aborted - aborted0 === 1;
          if (dropped === 0 && !cancelled) throw new InvariantError(`a segment for a pending SYN (flags ${flags}) was neither counted nor cancelled the SYN`);
          outcome = cancelled ? 'syn:cancelled' : 'syn:dropped';
          break;
        }
        case 'tw': {
          const kindAfter = this.entryKind(this.key);
          const retransmittedFin = (flags & TcpFlag.FIN) !== 0 && replied > 0 && kindAfter === 'tw';
          const newIncarnation = (flags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN && kindAfter !== 'tw';
          if (dropped === 0 && !retransmittedFin && !newIncarnation) {
            throw new InvariantError(`a segment for a TIME-WAIT record (flags ${flags}) was rejected without counting a drop`);
          }
          outcome = dropped > 0 ? 'tw:dropped' : retransmittedFin ? 'tw:fin' : 'tw:new_incarnation';
          break;
        }
        case 'none': {
          const pureSyn = (flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.FIN | TcpFlag.RST)) === TcpFlag.SYN;
          const pureAck = (flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.FIN | TcpFlag.RST)) === TcpFlag.ACK;
          const cookieSynAck = pureSyn && replied === 1 && offered === 0;
          if (dropped === 0 && offered === 0 && !cookieSynAck) {
            throw new InvariantError(`a segment for no connection (flags ${flags}) was neither offered, answered with a cookie, nor counted`);
          }
          if (offered > 0 && !pureSyn && !pureAck) throw new InvariantError(`a segment with flags ${flags} opened a connection`);
          outcome = offered > 0 ? (pureSyn ? 'none:syn' : 'none:cookie_ack') : cookieSynAck ? 'none:cookie_synack' : 'none:dropped';
          break;
        }
      }
    }
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }

  private ownerOp(flow: number, action: 'write' | 'close' | 'abort' | 'consume', bytes: number): void {
    const owner = this.ownerOf(flow);
    if (owner === null || owner.conn === null) return;
    const conn = owner.conn;
    const now = this.clock.now();
    switch (action) {
      case 'write':
        if (owner.closeCalled || owner.blocked) return;
        if (!conn.write(this.writeChunk(Math.min(bytes, MAX_WRITE)))) owner.blocked = true;
        break;
      case 'close':
        owner.closeCalled = true;
        conn.close(now);
        break;
      case 'abort':
        conn.abort('abort', now);
        break;
      case 'consume': {
        const n = Math.min(bytes, owner.unconsumed);
        owner.unconsumed -= n;
        conn.consume(n, now);
        break;
      }
    }
    this.stack.wake(conn);
    this.stack.flush();
  }

  private decide(index: number, how: 'accept' | RejectHow | 'quiet'): void {
    if (this.pending.length === 0) return;
    const req = this.pending.splice(index % this.pending.length, 1)[0]!;
    if (how === 'accept') {
      const flow = this.flows.findIndex((f) => f.matchesKey(req.flow));
      const owner = new Owner(this, flow, this.opts.ownersConsume === 'alternate' && (req.id & 1) === 0);
      const conn = this.stack.acceptPending(req, owner);
      if (conn !== null) {
        owner.conn = conn;
        this.owners.set(conn, owner);
      }
    } else if (how === 'quiet') {
      this.stack.dropPendingQuietly(req);
    } else {
      this.stack.rejectPending(req, how, how === 'refused' ? 'upstream_refused' : 'upstream_unreachable');
    }
    this.stack.flush();
  }

  ownerClosed(owner: Owner, conn: TcpConn): void {
    owner.conn = null;
    this.owners.delete(conn);
  }

  ownerOf(flow: number): Owner | null {
    for (const o of this.owners.values()) if (o.flow === flow) return o;
    return null;
  }

  private readonly chunks = new Map<number, Buffer>();
  private writeChunk(n: number): Buffer {
    // Owners' writes are kept by reference by the send buffer: share immutable chunks by size.
    let b = this.chunks.get(n);
    if (b === undefined) {
      b = Buffer.alloc(n, 0x62);
      if (this.chunks.size < 64) this.chunks.set(n, b);
    }
    return b;
  }

  /** Where a flow key currently lives in the stack's table. */
  private entryKind(key: FlowKey): EntryKind {
    const t = { family: key.family, remote: key.src, remotePort: key.srcPort, local: key.dst, localPort: key.dstPort };
    const same = (f: { family: 4 | 6; remote: Uint32Array; remotePort: number; local: Uint32Array; localPort: number }): boolean =>
      f.family === t.family &&
      f.remotePort === t.remotePort &&
      f.localPort === t.localPort &&
      f.remote.every((w, i) => w === t.remote[i]) &&
      f.local.every((w, i) => w === t.local[i]);
    for (const { flow } of this.stack.connections()) if (same(flow)) return 'conn';
    for (const p of this.stack.pendingSyns()) if (same(p.flow)) return 'syn';
    for (const { flow } of this.stack.timeWaits()) if (same(flow)) return 'tw';
    return 'none';
  }

  // ---------------------------------------------------------------- invariants

  /** Resource bounds that must hold after every operation. */
  checkBounds(): void {
    const s = this.stack;
    const o = this.opts;
    let pendingCount = 0;
    for (const _ of s.pendingSyns()) pendingCount++;
    if (s.connectionCount + pendingCount > o.maxConnections) {
      throw new InvariantError(`${s.connectionCount} connections + ${pendingCount} pending exceed --max-connections ${o.maxConnections}`);
    }
    if (s.halfOpenCount < 0 || s.halfOpenCount > s.connectionCount + pendingCount) {
      throw new InvariantError(`half-open count ${s.halfOpenCount} is out of range`);
    }
    let live = 0;
    for (const { conn } of s.connections()) {
      live++;
      // rcv.ts: buffered ≤ rcvBufBytes + 2^shift − 1.
      if (conn.receiveBuffered > o.rcvBufBytes + (1 << conn.rcv.shift)) {
        throw new InvariantError(`connection ${conn.id} holds ${conn.receiveBuffered} received bytes (buffer ${o.rcvBufBytes})`);
      }
      if (conn.sendBuffered > o.sndBufBytes + MAX_WRITE) {
        throw new InvariantError(`connection ${conn.id} holds ${conn.sendBuffered} bytes to send (buffer ${o.sndBufBytes})`);
      }
      if (conn.state === State.CLOSED) throw new InvariantError(`CLOSED connection ${conn.id} is still in the table`);
    }
    if (live !== s.connectionCount) throw new InvariantError(`connectionCount ${s.connectionCount} but ${live} in the table`);
    let tw = 0;
    for (const _ of s.timeWaits()) tw++;
    if (tw !== s.timeWaitRecords) throw new InvariantError(`timeWaitRecords ${s.timeWaitRecords} but ${tw} in the table`);
    this.checkColumns(pendingCount);
  }

  /** The table's columns (what a scrape reads) say what the entries say, slot by slot. */
  private checkColumns(pendingCount: number): void {
    const s = this.stack;
    const { code, values } = s.columns;
    let conns = 0;
    let tws = 0;
    let pendings = 0;
    for (let slot = 0; slot < s.tableSize; slot++) {
      const conn = s.connAt(slot);
      const at = slot * ROW_WIDTH;
      if (conn !== null) {
        conns++;
        const row = [code[slot], values[at + COL_CREATED_AT], values[at + COL_LAST_ACTIVITY_AT], values[at + COL_STATE_SINCE]];
        const truth = [conn.state, conn.createdAt, conn.lastActivityAt, conn.stateSince];
        if (row.some((v, i) => v !== truth[i])) {
          throw new InvariantError(`slot ${slot}: columns say ${row.join(' ')} but connection ${conn.id} has ${truth.join(' ')}`);
        }
      } else if (code[slot] === State.TIME_WAIT) tws++;
      else if (code[slot] === ROW_PENDING_SYN) pendings++;
      else throw new InvariantError(`slot ${slot}: code ${code[slot]} for a record that is not a connection`);
    }
    if (conns !== s.connectionCount || tws !== s.timeWaitRecords || pendings !== pendingCount) {
      throw new InvariantError(`columns count ${conns} connections, ${tws} TIME-WAIT, ${pendings} pending; the table ${s.connectionCount}, ${s.timeWaitRecords}, ${pendingCount}`);
    }
  }

  /**
   * Abort every connection, refuse every pending SYN and run the clock past every timeout: the
   * table must end empty (nothing outlives its timeouts).
   */
  drain(): void {
    for (const req of this.pending.splice(0)) this.stack.rejectPending(req, 'refused', 'upstream_refused');
    for (const owner of [...this.owners.values()]) {
      const conn = owner.conn;
      if (conn !== null) {
        conn.abort('abort', this.clock.now());
        this.stack.wake(conn);
      }
    }
    this.stack.flush();
    // TIME-WAIT lasts 2×MSL; step past it a few times.
    for (let i = 0; i < 4; i++) {
      this.clock.advance(2 * this.opts.mslMs + 1000);
      this.stack.runTimers();
    }
    this.checkBounds();
    const s = this.stack;
    let pendingCount = 0;
    for (const _ of s.pendingSyns()) pendingCount++;
    if (s.connectionCount !== 0 || s.timeWaitRecords !== 0 || pendingCount !== 0 || s.halfOpenCount !== 0) {
      throw new InvariantError(
        `after drain: ${s.connectionCount} connections, ${s.timeWaitRecords} TIME-WAIT, ${pendingCount} pending, ${s.halfOpenCount} half-open`,
      );
    }
    if (this.owners.size !== 0) throw new InvariantError(`${this.owners.size} owners never heard onClosed`);
  }

  /** Flow models forget what the stack said (after a drain: new incarnations start fresh). */
  resetModels(): void {
    for (const f of this.flows) {
      f.stackAck = -1;
      f.stackMax = -1;
      f.stackIss = -1;
      f.stackTsVal = 0;
    }
  }
}

/**
 * Insert IPv6 extension headers (8 octets each) between the IPv6 header and the TCP segment.
 * The TCP checksum stays valid: its pseudo-header uses the upper-layer length and protocol.
 */
function withExtensionHeaders(pkt: Buffer, chain: Array<{ type: number; a: number; b: number }>): Buffer {
  const out = Buffer.alloc(pkt.length + chain.length * 8);
  pkt.copy(out, 0, 0, 40);
  let nextField = 6; // offset of the Next Header field that names the following header
  let off = 40;
  for (const h of chain) {
    out[nextField] = h.type;
    out.fill(0, off, off + 8);
    switch (h.type) {
      case 43: // routing: type, segments left
        out[off + 2] = h.a & 3;
        out[off + 3] = h.b & 3;
        break;
      case 44: // fragment: offset and M flag, identification
        out.writeUInt16BE(h.b & 0xfff9, off + 2);
        out.writeUInt32BE(h.a, off + 4);
        break;
      default: // hop-by-hop / destination options: PadN filling the 6 octets
        out[off + 2] = 1;
        out[off + 3] = 4;
    }
    nextField = off;
    off += 8;
  }
  out[nextField] = 6;
  pkt.copy(out, off, 40);
  out.writeUInt16BE(out.length - 40, 4);
  return out;
}

/**
 * Make a mutated packet's checksums right again (IPv4 header checksum, TCP checksum) when its
 * lengths are still coherent, so the mutation is judged by the layers behind the checksum.
 */
export function fixChecksums(pkt: Buffer): void {
  if (pkt.length < 1) return;
  const version = pkt[0]! >>> 4;
  if (version === 4) {
    if (pkt.length < 20) return;
    const ihl = (pkt[0]! & 0x0f) * 4;
    const total = pkt.readUInt16BE(2);
    if (ihl < 20 || ihl > pkt.length || total > pkt.length || total < ihl) return;
    pkt.writeUInt16BE(0, 10);
    pkt.writeUInt16BE(checksum(pkt, 0, ihl), 10);
    if (pkt[9] !== 6 || total - ihl < 20) return;
    pkt.writeUInt16BE(pseudoSumV4At(pkt, 0, 6, total - ihl), ihl + 16);
    finishTcpChecksum(pkt, 0, 'full');
  } else if (version === 6) {
    if (pkt.length < 40) return;
    const plen = pkt.readUInt16BE(4);
    if (pkt[6] !== 6 || 40 + plen > pkt.length || plen < 20) return;
    pkt.writeUInt16BE(pseudoSumV6At(pkt, 0, 6, plen), 40 + 16);
    finishTcpChecksum(pkt, 0, 'full');
  }
}
