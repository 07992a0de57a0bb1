/**
 * The proxy's connect-deadline queue lets go of dials once they have settled: a settled dial
 * holds its socket, pipe and SYN, and the queue used to keep them until the connect timeout passed
 * (10 s of connections at a time under load).
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { UpstreamForwarder } from '../../src/proxy/forwarder.js';
import type { DestinationPolicy } from '../../src/proxy/policy.js';
import type { AfterFlush, PendingSyn, Stack } from '../../src/stack/stack.js';

describe('the forwarder dial queue', () => {
  it('keeps no more settled dials than live ones plus a little slack, however many connected', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const policy = { resolveAddress: () => ({ host: '127.0.0.1', port, address: null }) } as unknown as DestinationPolicy;
    const proxy = new UpstreamForwarder({ clock: { now: () => Date.now() }, policy, connectTimeoutMs: 10_000, idleTimeoutMs: 0, maxDialsInFlight: 1000 });
    const TOTAL = 400;
    let accepted = 0;
    let rejected = 0;
    let maxQueue = 0;
    let done: () => void = () => {};
    const allSettled = new Promise<void>((r) => (done = r));
    const settledOne = (): void => {
      maxQueue = Math.max(maxQueue, proxy.dialQueueSize);
      if (accepted + rejected === TOTAL) done();
    };
    const stack = {
      acceptPending() {
        accepted++;
        settledOne();
        return null; // the pipe's socket is closed again: only the dial matters here
      },
      rejectPending() {
        rejected++;
        settledOne();
      },
      dropPendingQuietly() {},
      wake() {},
      flushSoon() {},
      sendDueNow() {},
      openBatch() {},
      closeBatch() {},
      // The dials of a batch of SYNs connect at the batch's end (the wave's, below).
      runAfterFlush(task: AfterFlush) {
        afterFlush.push(task);
      },
      runAfterFlushFirst(task: AfterFlush) {
        afterFlush.push(task);
      },
    } as unknown as Stack;
    const afterFlush: AfterFlush[] = [];
    proxy.attach(stack);
    try {
      // In waves of 50, as SYNs arrive in batches.
      for (let wave = 0; wave < TOTAL / 50; wave++) {
        for (let i = 0; i < 50; i++) {
          const n = wave * 50 + i;
          proxy.onSyn({ id: n + 1, flow: { family: 4, local: new Uint32Array([0, 0, 0, 0x7f000001]), localPort: port } } as unknown as PendingSyn);
        }
        for (const task of afterFlush.splice(0)) task.afterFlush();
        await new Promise((r) => setTimeout(r, 5));
      }
      await allSettled;
      expect(accepted).toBe(TOTAL);
      expect(rejected).toBe(0);
      expect(proxy.dialsInFlight).toBe(0);
      // Without trimming the queue would hold all 400 until the 10 s timeout.
      expect(proxy.dialQueueSize).toBeLessThanOrEqual(64);
      expect(maxQueue).toBeLessThanOrEqual(50 + 2 * 50 + 64);
    } finally {
      proxy.stopAccepting();
      proxy.close();
      await new Promise((r) => server.close(r));
    }
  });
});
