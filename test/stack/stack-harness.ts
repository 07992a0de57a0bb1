/**
 * A Stack on an in-memory link with a manual clock, for tests that drive connections by packets:
 *
 *   const h = stackHarness({ maxTimeWait: 2 });
 *   const { conn, ourIss } = h.establish({ srcPort: 40000 });
 *   h.closeToTimeWait(conn, ourIss, { srcPort: 40000 });
 *
 * Packets come from APP (198.18.0.1) to DEST (198.18.1.2) unless a tuple says otherwise.
 */
import { expect } from 'vitest';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';
import type { LinkTx } from '../../src/wire/link.js';
import { Stack, type Forwarder, type PendingSyn, type StackOptions } from '../../src/stack/stack.js';
import type { ConnHandler, TcpConn } from '../../src/tcp/conn.js';
import { defaultTcpConfig } from '../../src/tcp/defaults.js';
import type { CloseReason, DropReason, ResetReason } from '../../src/tcp/events.js';
import { OutSegment, Segment, TcpFlag } from '../../src/wire/segment.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { STATE_NAMES } from '../../src/tcp/state.js';
import { FlowKey, PacketParser, finishTcpChecksum, writeTcpPacket } from '../../src/wire/packet.js';

export const APP = 0xc6120001; // 198.18.0.1
export const DEST = 0xc6120102; // 198.18.1.2
export const APP_ISN = 0xfffffff0; // next to the wrap

/** A link that keeps every transmitted packet, parsed. */
export class MemoryLink implements LinkTx {
  readonly vnetHdr = false;
  readonly txSlotSize = 70_000;
  readonly txBuffer = Buffer.alloc(this.txSlotSize);
  readonly sent: Array<{ seg: Segment; flow: FlowKey }> = [];
  private readonly parser = new PacketParser();
  txReserve(): number {
    return 0;
  }
  txCommit(offset: number, length: number): void {
    const raw = Buffer.from(this.txBuffer.subarray(offset, offset + length));
    const seg = new Segment();
    const flow = new FlowKey();
    this.parser.parse(raw, 0, raw.length, false, seg, flow);
    this.sent.push({ seg, flow });
  }
  txFlush(): void {}
  onTxDrain(): void {}
  take() {
    return this.sent.splice(0);
  }
}

export interface Tuple {
  src?: number;
  srcPort?: number;
  dst?: number;
  dstPort?: number;
}

export function appPacket(o: { seq: number; ack?: number; flags: number } & Tuple): Buffer {
  const out = new OutSegment();
  out.seq = o.seq;
  out.ack = o.ack ?? 0;
  out.flags = o.flags;
  out.window = 65535;
  if (o.flags & TcpFlag.SYN) out.options.mss = 1460;
  const buf = Buffer.alloc(100);
  const src = Uint32Array.of(0, 0, 0, o.src ?? APP);
  const dst = Uint32Array.of(0, 0, 0, o.dst ?? DEST);
  const hl = writeTcpPacket(buf, 0, 4, src, dst, o.srcPort ?? 40000, o.dstPort ?? 80, out, 0);
  finishTcpChecksum(buf, 0, 'full');
  return buf.subarray(0, hl);
}

export const idleHandler = (): ConnHandler => ({
  onEstablished() {},
  onData(c: TcpConn, d: Buffer) {
    c.consume(d.length, 0);
  },
  onFin() {},
  onSendSpace() {},
  onClosed() {},
});

export function stackHarness(
  opts: Partial<Pick<StackOptions, 'synBacklog' | 'maxConnections' | 'maxTimeWait' | 'onTimeWaitOverflow'>> & {
    mslMs?: number;
    isOwnConnection?: Forwarder['isOwnConnection'];
    /** The forwarder's decision on each SYN (default: kept in `syns` for the test to decide). */
    onSyn?: Forwarder['onSyn'];
  } = {},
) {
  const link = new MemoryLink();
  const clock = new ManualClock(1000);
  const hub = new EventHub();
  const syns: PendingSyn[] = [];
  const drops: DropReason[] = [];
  const resets: ResetReason[] = [];
  const closed: CloseReason[] = [];
  const transitions: string[] = [];
  hub.subscribe({
    drop: (_c, r) => drops.push(r),
    reset: (_c, dir, r) => {
      if (dir === 'sent') resets.push(r);
    },
    closed: (_c, r) => closed.push(r),
    stateChange: (_c, from, to) => transitions.push(`${STATE_NAMES[from]}>${STATE_NAMES[to]}`),
  });
  const forwarder: Forwarder = { onSyn: opts.onSyn ?? ((r) => syns.push(r)), onSynAborted() {} };
  if (opts.isOwnConnection !== undefined) forwarder.isOwnConnection = opts.isOwnConnection;
  const stack = new Stack({
    link,
    clock,
    tcp: defaultTcpConfig({ mslMs: opts.mslMs ?? 1000 }),
    forwarder,
    events: hub,
    synBacklog: opts.synBacklog ?? 16,
    maxConnections: opts.maxConnections ?? 100_000,
    ...(opts.maxTimeWait !== undefined ? { maxTimeWait: opts.maxTimeWait } : {}),
    ...(opts.onTimeWaitOverflow !== undefined ? { onTimeWaitOverflow: opts.onTimeWaitOverflow } : {}),
    setTimer: () => null,
    clearTimer: () => {},
  });
  const send = (pkt: Buffer): void => {
    stack.input(pkt, 0, pkt.length, false);
    stack.flush();
  };
  return {
    stack,
    link,
    clock,
    hub,
    syns,
    drops,
    resets,
    closed,
    transitions,
    send,
    /** SYN, accept, SYN-ACK, final ACK: an ESTABLISHED connection on the tuple. */
    establish(t: Tuple = {}): { conn: TcpConn; ourIss: number } {
      send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, ...t }));
      const req = syns.shift()!;
      const conn = stack.acceptPending(req, idleHandler())!;
      stack.flush();
      const synAck = link.take().at(-1)!;
      expect(synAck.seg.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
      const ourIss = synAck.seg.seq;
      send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.ACK, ...t }));
      return { conn, ourIss };
    },
    /** We close first (FIN), the app acknowledges it and sends its FIN: TIME-WAIT on our side. */
    closeToTimeWait(conn: TcpConn, ourIss: number, t: Tuple = {}): void {
      conn.close(clock.now());
      stack.wake(conn);
      stack.flush();
      send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK | TcpFlag.FIN, ...t }));
    },
  };
}
