/**
 * --max-time-wait (Linux's tcp_max_tw_buckets): past the bound a closing connection skips
 * TIME-WAIT, ACKs the peer's FIN and goes to CLOSED, counted; the transitions still add up.
 */
import { describe, expect, it } from 'vitest';
import { TcpFlag } from '../../src/wire/segment.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { APP_ISN, stackHarness } from './stack-harness.js';

/** Per state: transitions into it minus transitions out of it (what the gauge should show). */
function balance(transitions: string[]): Record<string, number> {
  const b: Record<string, number> = {};
  for (const t of transitions) {
    const [from, to] = t.split('>') as [string, string];
    b[from] = (b[from] ?? 0) - 1;
    b[to] = (b[to] ?? 0) + 1;
  }
  return b;
}

describe('--max-time-wait', () => {
  it('the third closing connection with --max-time-wait 2 goes straight to CLOSED, ACKs the FIN and is counted', () => {
    const overflowAt: number[] = [];
    const h = stackHarness({ mslMs: 30_000, maxTimeWait: 2, onTimeWaitOverflow: (now) => overflowAt.push(now) });
    const conns = [41000, 41001, 41002].map((srcPort) => ({ srcPort, ...h.establish({ srcPort }) }));
    h.transitions.length = 0;
    for (const [i, c] of conns.entries()) {
      h.closeToTimeWait(c.conn, c.ourIss, { srcPort: c.srcPort });
      const sent = h.link.take();
      // Every one of them, the third included, acknowledges the app's FIN.
      const ack = sent.at(-1)!;
      expect(ack.seg.flags).toBe(TcpFlag.ACK);
      expect(ack.seg.ack).toBe(seqAdd(APP_ISN, 2));
      expect(ack.seg.seq).toBe(seqAdd(c.ourIss, 2));
      expect(ack.flow.dstPort).toBe(c.srcPort);
      expect(h.stack.timeWaitRecords).toBe(Math.min(i + 1, 2));
    }
    expect(h.stack.timeWaitOverflows).toBe(1);
    expect(overflowAt).toEqual([h.clock.now()]);
    expect(h.stack.connectionCount).toBe(0);
    expect(h.stack.tableSize).toBe(2);
    // The app's ACK of our FIN rides with its own FIN: FIN_WAIT_1 → TIME_WAIT for the first two;
    // the third goes to CLOSED from there, never TIME_WAIT (Linux's tcp_done() after a bucket overflow).
    expect(h.transitions).toEqual([
      'ESTABLISHED>FIN_WAIT_1', 'FIN_WAIT_1>TIME_WAIT',
      'ESTABLISHED>FIN_WAIT_1', 'FIN_WAIT_1>TIME_WAIT',
      'ESTABLISHED>FIN_WAIT_1', 'FIN_WAIT_1>CLOSED',
    ]);
    expect(h.closed).toEqual(['fin']);
    // The gauge view: two in TIME_WAIT, one closed, nothing left in between.
    expect(balance(h.transitions)).toEqual({ TIME_WAIT: 2, CLOSED: 1, FIN_WAIT_1: 0, ESTABLISHED: -3 });

    // The skipped one is gone: a retransmitted FIN on its tuple is a segment for no connection.
    h.send(appPacket3(conns[2]!));
    expect(h.link.take().at(-1)!.seg.flags & TcpFlag.RST).toBe(TcpFlag.RST);

    // When the records expire the places are free again: the next close keeps its TIME-WAIT.
    h.clock.advance(60_001);
    h.stack.runTimers();
    expect(h.stack.timeWaitRecords).toBe(0);
    expect(h.closed).toEqual(['fin', 'fin', 'fin']);
    const d = h.establish({ srcPort: 41003 });
    h.closeToTimeWait(d.conn, d.ourIss, { srcPort: 41003 });
    expect(h.stack.timeWaitRecords).toBe(1);
    expect(h.stack.timeWaitOverflows).toBe(1);
  });

  it('from FIN_WAIT_2 too: the FIN that would start TIME-WAIT is ACKed and the connection is CLOSED', () => {
    const h = stackHarness({ mslMs: 30_000, maxTimeWait: 0 });
    const { conn, ourIss } = h.establish({ srcPort: 45000 });
    conn.close(h.clock.now());
    h.stack.wake(conn);
    h.stack.flush();
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK, srcPort: 45000 }));
    h.link.take();
    h.transitions.length = 0;
    h.send(appPacketFin(ourIss, 45000));
    expect(h.transitions).toEqual(['FIN_WAIT_2>CLOSED']);
    const [ack] = h.link.take();
    expect(ack!.seg.flags).toBe(TcpFlag.ACK);
    expect(ack!.seg.ack).toBe(seqAdd(APP_ISN, 2));
    expect(h.stack.timeWaitRecords).toBe(0);
    expect(h.stack.tableSize).toBe(0);
    expect(h.stack.timeWaitOverflows).toBe(1);
  });

  it('connections closing in one batch each take a place before their records exist', () => {
    const h = stackHarness({ mslMs: 30_000, maxTimeWait: 1 });
    const a = h.establish({ srcPort: 42000 });
    const b = h.establish({ srcPort: 42001 });
    for (const c of [a, b]) {
      c.conn.close(h.clock.now());
      h.stack.wake(c.conn);
    }
    h.stack.flush();
    h.link.take();
    // Both FINs in one input batch, one flush: the second must not slip past the bound.
    for (const [c, port] of [[a, 42000], [b, 42001]] as const) {
      const pkt = appPacketFin(c.ourIss, port);
      h.stack.input(pkt, 0, pkt.length, false);
    }
    h.stack.flush();
    expect(h.stack.timeWaitRecords).toBe(1);
    expect(h.stack.timeWaitOverflows).toBe(1);
  });

  it('unbounded by default', () => {
    const h = stackHarness({ mslMs: 30_000 });
    for (let p = 43000; p < 43010; p++) {
      const c = h.establish({ srcPort: p });
      h.closeToTimeWait(c.conn, c.ourIss, { srcPort: p });
    }
    expect(h.stack.timeWaitRecords).toBe(10);
    expect(h.stack.timeWaitOverflows).toBe(0);
  });
});

import { appPacket } from './stack-harness.js';

function appPacketFin(ourIss: number, srcPort: number): Buffer {
  return appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK | TcpFlag.FIN, srcPort });
}
function appPacket3(c: { ourIss: number; srcPort: number }): Buffer {
  return appPacketFin(c.ourIss, c.srcPort);
}
