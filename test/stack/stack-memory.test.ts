/**
 * The stack under --memory-limit: connections are built with the budget (their receive buffers are
 * charged to it), and under pressure a new SYN is refused with RST and counted as memory_limit.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';
import type { LinkTx } from '../../src/wire/link.js';
import { MemoryBudget, MemoryKind } from '../../src/tcp/memory-budget.js';
import { Stack, type Forwarder, type PendingSyn } from '../../src/stack/stack.js';
import type { ConnHandler } from '../../src/tcp/conn.js';
import { defaultTcpConfig } from '../../src/tcp/defaults.js';
import type { DropReason } from '../../src/tcp/events.js';
import { OutSegment, Segment, TcpFlag } from '../../src/wire/segment.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { FlowKey, PacketParser, finishTcpChecksum, writeTcpPacket } from '../../src/wire/packet.js';

const APP = 0xc6120001; // 198.18.0.1
const DEST = 0xc6120102; // 198.18.1.2
const MiB = 1024 * 1024;

/** A link that keeps the TCP segments it is given, parsed. */
class MemoryLink implements LinkTx {
  readonly vnetHdr = false;
  readonly txSlotSize = 70_000;
  readonly txBuffer = Buffer.alloc(this.txSlotSize);
  readonly sent: Segment[] = [];
  private readonly parser = new PacketParser();
  txReserve(): number {
    return 0;
  }
  txCommit(offset: number, length: number): void {
    const raw = Buffer.from(this.txBuffer.subarray(offset, offset + length));
    const seg = new Segment();
    if (this.parser.parse(raw, 0, raw.length, false, seg, new FlowKey()) === 'tcp') this.sent.push(seg);
  }
  txFlush(): void {}
  onTxDrain(): void {}
}

function packet(o: { seq: number; ack?: number; flags: number; srcPort: number; payload?: Buffer }): Buffer {
  const out = new OutSegment();
  out.seq = o.seq;
  out.ack = o.ack ?? 0;
  out.flags = o.flags;
  out.window = 65535;
  const payload = o.payload ?? Buffer.alloc(0);
  const buf = Buffer.alloc(100 + payload.length);
  const hl = writeTcpPacket(buf, 0, 4, Uint32Array.of(0, 0, 0, APP), Uint32Array.of(0, 0, 0, DEST), o.srcPort, 80, out, payload.length);
  payload.copy(buf, hl);
  finishTcpChecksum(buf, 0, 'full');
  return buf.subarray(0, hl + payload.length);
}

function harness(budget: MemoryBudget) {
  const link = new MemoryLink();
  const hub = new EventHub();
  const syns: PendingSyn[] = [];
  const drops: DropReason[] = [];
  hub.subscribe({ drop: (_c, r) => drops.push(r) });
  const forwarder: Forwarder = { onSyn: (r) => syns.push(r), onSynAborted() {} };
  const stack = new Stack({ link, clock: new ManualClock(1000), tcp: defaultTcpConfig(), forwarder, events: hub, budget, setTimer: () => null, clearTimer: () => {} });
  const send = (pkt: Buffer): void => {
    stack.input(pkt, 0, pkt.length, false);
    stack.flush();
  };
  return { stack, link, syns, drops, send };
}

/** A handler that never passes bytes on: they stay charged as the receive buffer. */
const holdingHandler: ConnHandler = { onEstablished() {}, onData() {}, onFin() {}, onSendSpace() {}, onClosed() {} };

describe('Stack under a MemoryBudget', () => {
  it('receive buffers of its connections are charged, and given back when the connection closes', () => {
    const budget = new MemoryBudget(64 * MiB);
    const h = harness(budget);
    h.send(packet({ seq: 100, flags: TcpFlag.SYN, srcPort: 1000 }));
    h.stack.acceptPending(h.syns[0]!, holdingHandler);
    const iss = h.link.sent.at(-1)!.seq;
    h.send(packet({ seq: 101, ack: seqAdd(iss, 1), flags: TcpFlag.ACK, srcPort: 1000 }));
    h.send(packet({ seq: 101, ack: seqAdd(iss, 1), flags: TcpFlag.ACK, srcPort: 1000, payload: Buffer.alloc(1000) }));
    // A hole: 10 bytes one byte beyond RCV.NXT cost one reassembly block.
    h.send(packet({ seq: 1102, ack: seqAdd(iss, 1), flags: TcpFlag.ACK, srcPort: 1000, payload: Buffer.alloc(10) }));
    expect(budget.usedBy(MemoryKind.RECEIVE)).toBe(1000);
    expect(budget.usedBy(MemoryKind.REASSEMBLY)).toBe(4096);
    h.send(packet({ seq: 1101, ack: seqAdd(iss, 1), flags: TcpFlag.RST, srcPort: 1000 }));
    expect(h.stack.connectionCount).toBe(0);
    expect(budget.used).toBe(0);
  });

  it('under pressure a new SYN is refused with RST and counted as memory_limit', () => {
    const budget = new MemoryBudget(8 * MiB);
    const h = harness(budget);
    budget.charge(MemoryKind.SEND, budget.softMark);
    h.send(packet({ seq: 5, flags: TcpFlag.SYN, srcPort: 2000 }));
    expect(h.syns).toHaveLength(0);
    expect(h.link.sent.at(-1)!.flags).toBe(TcpFlag.RST | TcpFlag.ACK);
    expect(h.drops).toEqual(['memory_limit']);
    // Once memory is back below the mark, SYNs are offered to the forwarder again.
    budget.release(MemoryKind.SEND, 1);
    h.send(packet({ seq: 5, flags: TcpFlag.SYN, srcPort: 2000 }));
    expect(h.syns).toHaveLength(1);
  });

  it('a segment the budget refuses is dropped as memory_limit and RCV.NXT is ACKed at once', () => {
    const budget = new MemoryBudget(2 * MiB);
    const h = harness(budget);
    h.send(packet({ seq: 100, flags: TcpFlag.SYN, srcPort: 1000 }));
    h.stack.acceptPending(h.syns[0]!, holdingHandler);
    const iss = h.link.sent.at(-1)!.seq;
    h.send(packet({ seq: 101, ack: seqAdd(iss, 1), flags: TcpFlag.ACK, srcPort: 1000 }));
    budget.charge(MemoryKind.SEND, budget.limit);
    const before = h.link.sent.length;
    h.send(packet({ seq: 102, ack: seqAdd(iss, 1), flags: TcpFlag.ACK, srcPort: 1000, payload: Buffer.alloc(100) }));
    expect(h.drops).toContain('memory_limit');
    const ack = h.link.sent.slice(before).at(-1)!;
    expect(ack.ack).toBe(101);
    expect(budget.usedBy(MemoryKind.REASSEMBLY)).toBe(0);
  });
});
