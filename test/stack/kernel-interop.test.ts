/**
 * The Linux kernel as the peer: kernel clients in a namespace connect over a real TUN device to
 * synfin's userspace stack (with test handlers standing in for the proxy).
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { State, STATE_NAMES } from '../../src/tcp/state.js';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { startStackEnv, type StackEnv } from '../helpers/stack-env.js';

const CLIENT = path.join(import.meta.dirname, '../helpers/kernel-client.mjs');

function seededChunk(seed: string, index: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  let block = 0;
  while (off < size) off += crypto.createHash('sha256').update(`${seed}:${index}:${block++}`).digest().copy(buf, off);
  return buf;
}

function countTransitions(env: StackEnv): Map<string, number> {
  const counts = new Map<string, number>();
  env.hub.subscribe({
    stateChange(_c, from, to) {
      const k = `${STATE_NAMES[from]}>${STATE_NAMES[to]}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    },
  });
  return counts;
}

async function waitUntil(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let env: StackEnv | null = null;
afterEach(() => {
  env?.close();
  env = null;
  destroyAllNetns();
});

describeIfTun('kernel interop over a TUN device', () => {
  it('1,000 connections open and close cleanly when the client closes first (ours: CLOSE_WAIT → LAST_ACK)', async () => {
    env = startStackEnv({ handler: 'echo', tcp: { mslMs: 100 } });
    const transitions = countTransitions(env);
    const r = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, '7', '1000', '20', 'client']);
    expect(JSON.parse(r.stdout)).toEqual({ ok: 1000, failed: 0, errors: {} });
    await waitUntil('an empty table', () => env!.stack.connectionCount === 0 && env!.stack.timeWaitRecords === 0);
    expect(transitions.get('LISTEN>SYN_RECEIVED')).toBe(1000);
    expect(transitions.get('SYN_RECEIVED>ESTABLISHED')).toBe(1000);
    expect(transitions.get('ESTABLISHED>CLOSE_WAIT')).toBe(1000);
    expect(transitions.get('CLOSE_WAIT>LAST_ACK')).toBe(1000);
    expect(transitions.get('LAST_ACK>CLOSED')).toBe(1000);
  }, 120_000);

  it('1,000 connections close cleanly when we close first (FIN_WAIT_1 → FIN_WAIT_2 → TIME_WAIT → CLOSED)', async () => {
    env = startStackEnv({ handler: 'close-first', reply: Buffer.from('bye\n'), tcp: { mslMs: 100 } });
    const transitions = countTransitions(env);
    const r = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, '7', '1000', '20', 'server']);
    expect(JSON.parse(r.stdout)).toEqual({ ok: 1000, failed: 0, errors: {} });
    await waitUntil('TIME-WAIT to expire', () => env!.stack.connectionCount === 0 && env!.stack.timeWaitRecords === 0);
    expect(transitions.get('ESTABLISHED>FIN_WAIT_1')).toBe(1000);
    // Our FIN is acknowledged before (FIN_WAIT_2) or together with (TIME_WAIT) the app's FIN.
    const viaFw2 = transitions.get('FIN_WAIT_2>TIME_WAIT') ?? 0;
    const direct = transitions.get('FIN_WAIT_1>TIME_WAIT') ?? 0;
    const closing = transitions.get('CLOSING>TIME_WAIT') ?? 0;
    expect(viaFw2 + direct + closing).toBe(1000);
    expect(transitions.get('TIME_WAIT>CLOSED')).toBe(1000);
  }, 120_000);

  it('the kernel mirrors our states: we CLOSE_WAIT while it is FIN_WAIT_2; we FIN_WAIT_2 while it is CLOSE_WAIT', async () => {
    // A handler that never closes after the app's FIN, and one that closes first.
    env = startStackEnv({
      handler: () => ({ onEstablished() {}, onData(c, d) { c.consume(d.length, performance.now()); }, onFin() {}, onSendSpace() {}, onClosed() {} }),
    });
    const holder = env.ns.spawn(process.execPath, [CLIENT, 'hold', env.serverAddr, '9', '3', 'half-close']);
    try {
      await waitUntil('three CLOSE_WAIT connections', () => [...env!.stack.connections()].filter((c) => c.conn.state === State.CLOSE_WAIT).length === 3);
      // The kernel leaves FIN_WAIT_1 when our delayed ACK of its FIN arrives (delayedAckMs).
      const finWait2 = (): string[] => env!.ns.execSync('ss', ['-Htan', 'state', 'fin-wait-2']).trim().split('\n').filter((l) => l.includes(env!.serverAddr));
      await waitUntil('three kernel sockets in FIN_WAIT_2', () => finWait2().length === 3);
      expect(finWait2()).toHaveLength(3);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 30_000);

  it('the kernel sits in CLOSE_WAIT while we wait in FIN_WAIT_2 (the app leak, seen from both sides)', async () => {
    env = startStackEnv({ handler: 'close-first', reply: Buffer.from('bye\n') });
    const holder = env.ns.spawn(process.execPath, [CLIENT, 'hold', env.serverAddr, '9', '4', 'never-close']);
    try {
      await waitUntil('four FIN_WAIT_2 connections', () => [...env!.stack.connections()].filter((c) => c.conn.state === State.FIN_WAIT_2).length === 4);
      const ss = env.ns.execSync('ss', ['-Htan', 'state', 'close-wait']);
      expect(ss.trim().split('\n').filter((l) => l.includes(env!.serverAddr))).toHaveLength(4);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 30_000);

  it('100 MB each way arrive byte-exact through 2% loss, reordering and duplication', async () => {
    const size = 100 * 1024 * 1024;
    const fault = { seed: 1234, loss: 0.02, duplicate: 0.02, reorder: 0.02, reorderMs: 3, delayMs: 0, jitterMs: 0 };
    // Upload: the kernel sends, the stack hashes.
    env = startStackEnv({ handler: 'discard', fault, tcp: { mslMs: 100 } });
    const up = await env.ns.exec(process.execPath, [CLIENT, 'send', env.serverAddr, '9', String(size), 'up']);
    const sent = JSON.parse(up.stdout) as { sent: number; sha256: string };
    const got = [...env.received.values()][0]!;
    expect(got.bytes).toBe(size);
    expect(got.hash.digest('hex')).toBe(sent.sha256);
    env.close();
    // Download: the stack sends seeded data with backpressure, the kernel hashes.
    const want = crypto.createHash('sha256');
    const chunks: Buffer[] = [];
    // 1 MiB of seeded data, sent 100 times over (the hash covers every byte sent).
    const block = Buffer.concat(Array.from({ length: 16 }, (_, i) => seededChunk('down', i, 65536)));
    for (let off = 0; off < size; off += block.length) {
      const c = block.subarray(0, Math.min(block.length, size - off));
      chunks.push(c);
      want.update(c);
    }
    let next = 0;
    env = startStackEnv({
      fault,
      tcp: { mslMs: 100 },
      handler: () => {
        const pump = (c: import('../../src/tcp/conn.js').TcpConn) => {
          while (next < chunks.length) {
            if (!c.write(chunks[next++]!)) break;
          }
          if (next >= chunks.length) c.close(performance.now());
          env!.stack.wake(c);
          env!.stack.flushSoon();
        };
        return {
          onEstablished: pump,
          onData(c, d) { c.consume(d.length, performance.now()); },
          onFin() {},
          onSendSpace: pump,
          onClosed() {},
        };
      },
    });
    const down = await env.ns.exec(process.execPath, [CLIENT, 'receive', env.serverAddr, '9']);
    const result = JSON.parse(down.stdout) as { bytes: number; sha256: string };
    expect(result.bytes).toBe(size);
    expect(result.sha256).toBe(want.digest('hex'));
  }, 300_000);
});
