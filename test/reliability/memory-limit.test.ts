/**
 * --memory-limit against the real proxy (root: a TUN device in a fresh namespace, real kernel
 * sockets). Under a small limit, hand-made connections that leave a hole at RCV.NXT
 * (holes.py: data held out of order that is never joined), apps that never read what their
 * destinations send, and destinations that never read what the apps send push synfin's buffers
 * to the limit. Then:
 * - a new SYN is refused with RST (the app sees ECONNREFUSED) and counted as memory_limit;
 * - what is charged stays within the limit plus the per-connection minimum;
 * - a well-behaved client connected before the flood still echoes its bytes byte-exact;
 * - synfin_memory_bytes reports used and limit.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CONN_MINIMUM } from '../../src/tcp/memory-budget.js';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';
import { ATTACK, closeServer, collectLines, killAndWait, lastJson, listen, PEER, PYTHON, sleep, startEnv, waitFor, type Env } from './env.js';

const HOLES = path.join(import.meta.dirname, 'holes.py');
const MiB = 1024 * 1024;
const LIMIT = 8 * MiB;

describeIfTun('--memory-limit: holes, never-reading apps and destinations at the limit', () => {
  let env: Env;
  let echo: Awaited<ReturnType<typeof listen>>;
  let sink: Awaited<ReturnType<typeof listen>>;
  let source: Awaited<ReturnType<typeof listen>>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    echo = await listen((s) => s.on('data', (d) => s.write(d)).on('end', () => s.end()));
    // Never reads: the app's bytes pile up in synfin (its receive buffers, the socket queue).
    sink = await listen((s) => s.pause());
    // Writes without end: toward apps that never read, synfin's send buffers fill.
    const chunk = Buffer.alloc(256 * 1024, 0x5a);
    source = await listen((s) => {
      const pump = (): void => {
        while (!s.destroyed && s.write(chunk));
      };
      s.on('drain', pump);
      pump();
    });
    env = await startEnv({ memoryLimit: LIMIT, maxConnections: 2000 });
    await env.warmUp(echo.port);
  }, 60_000);

  afterAll(async () => {
    for (const c of children) await killAndWait(c);
    await env?.close();
    await Promise.all([closeServer(echo), closeServer(sink), closeServer(source)]);
    destroyAllNetns();
  }, 30_000);

  function spawnLines(args: string[]): { child: ChildProcess; lines: string[] } {
    const child = env.ns.spawn(PYTHON, args);
    children.push(child);
    child.stderr?.on('data', () => {});
    return { child, lines: collectLines(child) };
  }

  async function nextJson<T>(lines: string[], from: number, what: string, timeoutMs = 60_000): Promise<T> {
    await waitFor(what, () => lines.length, (n) => n > from, timeoutMs);
    return JSON.parse(lines[from]!) as T;
  }

  it('refuses new connections with memory_limit, stays within the limit, and a connected client still echoes byte-exact', async () => {
    const budget = env.synfin.budget;
    expect(budget.limit).toBe(LIMIT);
    const metrics0 = await env.metrics();
    expect(metricValue(metrics0, 'synfin_memory_bytes', { kind: 'limit' })).toBe(LIMIT);
    expect(metricValue(metrics0, 'synfin_tcp_dropped_segments_total', { reason: 'memory_limit' })).toBe(0);

    // The well-behaved client, connected before the flood.
    const good = spawnLines([ATTACK, 'client', env.serverAddr, String(echo.port)]);
    expect(await nextJson<{ ready?: boolean }>(good.lines, 0, 'the client to connect')).toMatchObject({ ready: true });
    good.child.stdin!.write('echo 100000\n');
    expect(await nextJson(good.lines, 1, 'the first echo')).toEqual({ echo: 100000, match: true });

    // Connections leaving a hole at RCV.NXT, each holding up to 60 KB out of order.
    const holes = spawnLines([HOLES, 'holes', env.tunName, env.serverAddr, String(sink.port), '100', '60000']);
    const made = await nextJson<{ established: number }>(holes.lines, 0, 'the holes', 90_000);
    expect(made.established).toBeGreaterThan(50);

    // Apps that never read a destination that never stops writing.
    // (Up to 1 MiB each: 4 of them take half the limit.)
    const readers = spawnLines([HOLES, 'never-read', env.serverAddr, String(source.port), '4']);
    // (Those that come after the pressure mark are refused: ECONNREFUSED.)
    await nextJson<{ connected: number }>(readers.lines, 0, 'the never-reading apps');
    // Apps whose destination never reads (the sink): 4 connections writing without end.
    const writerProc = env.ns.spawn(process.execPath, [
      '-e',
      `const net=require('net');const b=Buffer.alloc(65536,1);for(let i=0;i<4;i++){const s=net.connect(${sink.port},'${env.serverAddr}');s.on('error',()=>{});const w=()=>{while(s.write(b));};s.on('connect',w);s.on('drain',w);}setInterval(()=>{},1000);`,
    ]);
    children.push(writerProc);
    // Usage reaches the pressure mark...
    await waitFor('memory pressure', () => budget.used, (u) => u >= budget.softMark, 30_000);
    // ...and a new connection is refused at once (RST: ECONNREFUSED), counted as memory_limit.
    const refused = await env.ns.exec(process.execPath, [PEER, 'connect', env.serverAddr, String(echo.port), '5000']);
    expect(lastJson<{ ok: boolean; code: string }>(refused.stdout)).toMatchObject({ ok: false, code: 'ECONNREFUSED' });
    const metrics1 = await env.metrics();
    expect(metricValue(metrics1, 'synfin_tcp_dropped_segments_total', { reason: 'memory_limit' })).toBeGreaterThan(0);
    expect(metricValue(metrics1, 'synfin_memory_bytes', { kind: 'used' })).toBeGreaterThanOrEqual(budget.softMark);

    // The client connected before still moves its bytes, byte-exact, both ways.
    good.child.stdin!.write('echo 1000000\n');
    expect(await nextJson(good.lines, 2, 'the echo under pressure', 60_000)).toEqual({ echo: 1000000, match: true });

    // Never more than the limit plus the per-connection minimum (both directions) of each connection.
    const conns = env.synfin.stack.connectionCount;
    expect(budget.peak).toBeLessThanOrEqual(LIMIT + conns * 2 * CONN_MINIMUM);
    // eslint-disable-next-line no-console
    console.log(`memory-limit: limit ${LIMIT}, peak ${budget.peak}, used ${budget.used}, ${conns} connections, refused charges ${budget.refused}`);
    await sleep(10);
  }, 180_000);
});
