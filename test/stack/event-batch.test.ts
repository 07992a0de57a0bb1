/**
 * The upstream sockets' events of one poll form a batch (Stack.openBatch/closeBatch, issue 24):
 * what their handlers make due goes to the app in one flush when the batch closes, in the same
 * turn of the event loop, not from a setImmediate queued by the first of them.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { UpstreamSockets, type EventBatchSink, type UpstreamHandler, type UpstreamSocket } from '../../src/proxy/upstream.js';
import { TcpFlag } from '../../src/wire/segment.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { APP_ISN, appPacket, idleHandler, stackHarness } from './stack-harness.js';
import { dial, until } from '../proxy/upstream-harness.js';

const nextTurn = () => new Promise((r) => setImmediate(r));

describe('a batch of upstream events', () => {
  it('responses written to two connections during the batch leave together when it closes, in the same turn', async () => {
    const h = stackHarness();
    const a = h.establish({ srcPort: 40001 });
    const b = h.establish({ srcPort: 40002 });
    h.link.take();
    h.stack.openBatch();
    for (const { conn } of [a, b]) {
      conn.write(Buffer.from('response'));
      // What the pipe does for each response (Pipe.sendSoon).
      h.stack.wake(conn);
      h.stack.flushSoon();
    }
    expect(h.link.sent).toHaveLength(0);
    let ran = 0;
    h.stack.runAfterFlush({ afterFlushQueued: false, afterFlush: () => ran++ });
    h.stack.closeBatch();
    const sent = h.link.take();
    expect(sent.map((p) => [p.flow.dstPort, p.seg.payload.toString()])).toEqual([
      [40001, 'response'],
      [40002, 'response'],
    ]);
    expect(ran).toBe(1);
    // Nothing was left for a setImmediate flush: the next turn sends nothing more.
    await nextTurn();
    expect(h.link.take()).toHaveLength(0);
  });

  it('keeps its dirty and after-flush lists (their arrays) from flush to flush, emptied but not cut back, and runs tasks queued by tasks', () => {
    const h = stackHarness();
    const a = h.establish({ srcPort: 40011 });
    const b = h.establish({ srcPort: 40012 });
    h.link.take();
    const inner = h.stack as unknown as { dirtyList: unknown[]; afterFlushList: unknown[] };
    for (let round = 0; round < 3; round++) {
      h.stack.openBatch();
      for (const { conn } of [a, b]) {
        conn.write(Buffer.from(`r${round}`));
        h.stack.wake(conn);
        h.stack.flushSoon();
      }
      let ran = 0;
      const second = { afterFlushQueued: false, afterFlush: () => ran++ };
      h.stack.runAfterFlush({ afterFlushQueued: false, afterFlush: () => (ran++, h.stack.runAfterFlush(second)) });
      h.stack.closeBatch();
      expect(h.link.take().map((p) => p.seg.payload.toString())).toEqual([`r${round}`, `r${round}`]);
      expect(ran).toBe(2);
      // Emptied (no connection or task held after the flush), and still as long: V8 frees the
      // backing store of an array cut to length 0, and the next push would allocate it again.
      expect(inner.dirtyList.length).toBeGreaterThanOrEqual(2);
      expect(inner.dirtyList.every((e) => e === null)).toBe(true);
      expect(inner.afterFlushList.length).toBeGreaterThanOrEqual(2);
      expect(inner.afterFlushList.every((e) => e === null)).toBe(true);
    }
  });

  it("runs runAfterFlushFirst's tasks (the proxy's dials) ahead of the batch's other after-flush tasks, queued before them or by them", () => {
    const h = stackHarness();
    const order: string[] = [];
    const task = (name: string, then?: () => void) => ({ afterFlushQueued: false, afterFlush: () => (order.push(name), then?.()) });
    const lateDial = task('late dial');
    h.stack.openBatch();
    // A pipe's end (a close(2) of a finished connection) queued before the batch's dials.
    h.stack.runAfterFlush(task('pipe end', () => h.stack.runAfterFlushFirst(lateDial)));
    h.stack.runAfterFlush(task('pipe write'));
    const dials = task('dials');
    h.stack.runAfterFlushFirst(dials);
    h.stack.runAfterFlushFirst(dials);
    h.stack.closeBatch();
    expect(order).toEqual(['dials', 'pipe end', 'pipe write', 'late dial']);
    const inner = h.stack as unknown as { firstAfterFlushList: unknown[] };
    expect(inner.firstAfterFlushList.every((e) => e === null)).toBe(true);
  });

  it('outside a batch, flushSoon still sends on the next turn', async () => {
    const h = stackHarness();
    const { conn } = h.establish();
    h.link.take();
    conn.write(Buffer.from('late'));
    h.stack.wake(conn);
    h.stack.flushSoon();
    expect(h.link.sent).toHaveLength(0);
    await nextTurn();
    const sent = h.link.take();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.seg.flags & TcpFlag.PSH).toBeTruthy();
  });

  it('a refusal written during the batch (RST to a pending SYN) is handed to the device when the batch closes', () => {
    const h = stackHarness();
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 40003 }));
    const req = h.syns.shift()!;
    let flushes = 0;
    const txFlush = h.link.txFlush.bind(h.link);
    h.link.txFlush = () => {
      flushes++;
      txFlush();
    };
    h.stack.openBatch();
    h.stack.rejectPending(req, 'refused', 'upstream_refused');
    expect(flushes).toBe(0);
    h.stack.closeBatch();
    expect(flushes).toBe(1);
    const sent = h.link.take();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.seg.flags & TcpFlag.RST).toBeTruthy();
  });

  it('a SYN accepted within its own handling gets its SYN-ACK during that input, and no flush is left for a later turn', async () => {
    // The forwarder accepts inside onSyn when the upstream connect(2) completed within the call.
    const holder: { h?: ReturnType<typeof stackHarness> } = {};
    const h = stackHarness({ onSyn: (req) => void holder.h!.stack.acceptPending(req, idleHandler()) });
    holder.h = h;
    let flushes = 0;
    const txFlush = h.link.txFlush.bind(h.link);
    h.link.txFlush = () => {
      flushes++;
      txFlush();
    };
    const syn = appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 40004 });
    h.stack.input(syn, 0, syn.length, false);
    // Written during the SYN's own input (sendHandshake), then the batch's flush sends nothing more.
    const sent = h.link.take();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.seg.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
    expect(flushes).toBe(1);
    h.stack.flush();
    expect(flushes).toBe(2);
    expect(h.link.take()).toHaveLength(0);
    await nextTurn();
    expect(flushes).toBe(2);
    expect(h.link.take()).toHaveLength(0);
  });

  it('a SYN accepted within its own handling gets its SYN-ACK ahead of what earlier segments of the batch made due', () => {
    const holder: { h?: ReturnType<typeof stackHarness> } = {};
    let decide = false;
    const h = stackHarness({
      onSyn: (req) => {
        if (decide) holder.h!.stack.acceptPending(req, idleHandler());
        else holder.h!.syns.push(req);
      },
    });
    holder.h = h;
    const { conn, ourIss } = h.establish({ srcPort: 40005 });
    h.link.take();
    decide = true;
    // One batch: the first connection's FIN, a response written to it meanwhile (a segment due),
    // then a new connection's SYN.
    const fin = appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.ACK | TcpFlag.FIN, srcPort: 40005 });
    const syn = appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 40006 });
    h.stack.input(fin, 0, fin.length, false);
    conn.write(Buffer.from('response'));
    h.stack.wake(conn);
    h.stack.input(syn, 0, syn.length, false);
    h.stack.flush();
    const sent = h.link.take();
    expect(sent.map((p) => [p.flow.dstPort, p.seg.flags & TcpFlag.SYN, p.seg.payload.toString()])).toEqual([
      [40006, TcpFlag.SYN, ''],
      [40005, 0, 'response'],
    ]);
  });

  it('a batch that made nothing due sends nothing', () => {
    const h = stackHarness();
    h.establish();
    h.link.take();
    h.stack.openBatch();
    h.stack.closeBatch();
    expect(h.link.take()).toHaveLength(0);
  });

  it('the upstream sockets open the batch before the first handler of a poll and close it after the last', async () => {
    const server = net.createServer((s) => s.end('hi'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const sockets = new UpstreamSockets({ clock: { now: () => Date.now() }, idleTimeoutMs: 0 });
    const log: string[] = [];
    const sink: EventBatchSink = { openBatch: () => log.push('open'), closeBatch: () => log.push('close') };
    try {
      const socket: UpstreamSocket = await dial(sockets, port);
      sockets.batchSink = sink;
      let ended = false;
      const handler: UpstreamHandler = {
        onUpstreamConnect() {},
        onUpstreamConnectFailed() {},
        onUpstreamData: (c) => log.push(`data ${c.toString()}`),
        onUpstreamEnd: () => ((ended = true), log.push('end')),
        onUpstreamError() {},
        onUpstreamDrain() {},
        onUpstreamClose() {},
        onUpstreamIdle() {},
      };
      socket.handler = handler;
      socket.resume();
      await until('the end of the stream', () => ended, 5000);
      socket.destroy();
      const first = log.indexOf('data hi');
      expect(first).toBeGreaterThan(0);
      expect(log[first - 1]).toBe('open');
      expect(log.at(-1)).toBe('close');
      expect(log.filter((e) => e === 'open').length).toBe(log.filter((e) => e === 'close').length);
    } finally {
      sockets.close();
      server.close();
    }
  });
});
