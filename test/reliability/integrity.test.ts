/**
 * Integrity under impairment: 200 MB each way through the whole proxy, split over many concurrent
 * connections, with the seeded fault injector (--impair) dropping, duplicating, reordering and
 * delaying packets in front of the TUN device in both directions. Both ends are real kernel
 * sockets (the app in its namespace, the destination on 127.0.0.1 in its own process); each end
 * hashes what it sent and what it received, and every byte must arrive exactly once, in order.
 * The impairment must show where it should: retransmissions by the stack, and injector counts that
 * reconcile with the TUN device's and the stack's own packet counters.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';
import { collectLines, killAndWait, lastJson, PEER, startEnv, waitFor, type Env } from './env.js';

const SERVER = path.join(import.meta.dirname, 'integrity-server.mjs');

const CONNS = 32;
const TOTAL = 200 * 1024 * 1024;
const PER_CONN = TOTAL / CONNS;
const HEADER = 8;
// 1% loss, 1% reordered by 5 ms, 0.5% duplicated, 2 ms one-way delay, in each direction. Enough to
// make every connection recover from losses many times over; little enough to finish in budget.
const LOSS = 0.01;
const DUP = 0.005;
const REORDER = 0.01;
const IMPAIR = `loss=${LOSS},reorder=${REORDER},reorder-ms=5,dup=${DUP},delay=2,seed=8`;

interface ClientResult {
  id: number;
  code: string | null;
  sentBytes: number;
  sentSha: string;
  recvBytes: number;
  recvSha: string;
}
type ServerResult = ClientResult;

let env: Env | undefined;
let server: ChildProcess | undefined;

afterAll(async () => {
  await env?.close();
  if (server !== undefined) await killAndWait(server, 'SIGTERM');
  destroyAllNetns();
});

describeIfTun('integrity under impairment', () => {
  it(`${TOTAL >> 20} MB each way over ${CONNS} connections arrive byte-exact through loss, reordering, duplication and delay`, async () => {
    server = spawn(process.execPath, [SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = collectLines(server);
    const port = (await waitFor('the upstream server', () => lines[0], (l) => l !== undefined)) as string;
    const upstreamPort = (JSON.parse(port) as { port: number }).port;

    env = await startEnv({ impair: IMPAIR, logLevel: 'warn' });
    const started = Date.now();
    const run = await env.ns.exec(process.execPath, [PEER, 'exchange', env.serverAddr, String(upstreamPort), String(CONNS), String(PER_CONN)]);
    const client = lastJson<{ results: ClientResult[]; ms: number }>(run.stdout).results;
    await waitFor('every upstream connection to report', () => lines.length - 1, (n) => n >= CONNS, 10_000);
    const seconds = (Date.now() - started) / 1000;
    const upstream = new Map(lines.slice(1).map((l) => JSON.parse(l) as ServerResult).map((r) => [r.id, r]));

    // Byte-exact both ways, on every connection: what one end hashed while sending is what the
    // other end hashed while receiving.
    expect(client).toHaveLength(CONNS);
    expect(upstream.size).toBe(CONNS);
    for (const c of client) {
      const s = upstream.get(c.id)!;
      expect({ id: c.id, code: c.code, sent: c.sentBytes, recv: c.recvBytes }).toEqual({ id: c.id, code: null, sent: PER_CONN, recv: PER_CONN });
      expect({ id: s.id, code: s.code, sent: s.sentBytes, recv: s.recvBytes }).toEqual({ id: c.id, code: null, sent: PER_CONN, recv: PER_CONN });
      expect(s.recvSha).toBe(c.sentSha);
      expect(c.recvSha).toBe(s.sentSha);
    }

    // Nothing is left: every connection closed (TIME-WAIT records expired), no fd leaked.
    await env.settle(15_000);

    const m = await env.metrics();
    // The byte counters count payload as it flows, each byte once despite the retransmissions.
    expect(metricValue(m, 'synfin_tcp_bytes_total', { direction: 'client_to_upstream' })).toBe(CONNS * (PER_CONN + HEADER));
    expect(metricValue(m, 'synfin_tcp_bytes_total', { direction: 'upstream_to_client' })).toBe(CONNS * PER_CONN);
    expect(metricValue(m, 'synfin_tcp_connections_closed_total', { reason: 'fin' })).toBe(CONNS);
    const retransmitted = metricValue(m, 'synfin_tcp_retransmitted_segments_total');
    expect(retransmitted).toBeGreaterThan(0);
    // The loss ends the initial slow start toward the app, once per connection at most.
    const exits = ['delay', 'loss', 'timeout'].reduce((sum, reason) => sum + metricValue(m, 'synfin_tcp_slow_start_exits_total', { reason }), 0);
    expect(exits).toBeGreaterThan(0);
    expect(exits).toBeLessThanOrEqual(CONNS);

    // The injector's counts reconcile with the device's and the stack's. A packet offered to the
    // injector is dropped, or passed on once, or twice when duplicated (delayed ones included,
    // once released); on the way out, a packet passed on but finding the device ring full is
    // counted dropped too. Wait for the last delayed packets to be released.
    const stack = env.synfin.stack;
    const tun = env.synfin.tun.counters;
    const { rx, tx } = env.synfin.impairment!;
    await waitFor(
      'the injector to release what it holds',
      () => [rx.passed + rx.dropped - (tun.rxPackets + rx.duplicated), tun.txPackets + tun.txDropped + tx.dropped - (stack.segmentsOut + tx.duplicated)],
      ([a, b]) => a === 0 && b === 0,
      2000,
    );
    // Every TCP segment the stack parsed came through the injector (other packets from the
    // namespace, such as IPv6 router solicitations, pass it too but are not TCP).
    expect(stack.segmentsIn).toBeLessThanOrEqual(rx.passed);
    expect(stack.segmentsIn).toBeGreaterThan(rx.passed * 0.99);
    // The rates are the configured ones (tens of thousands of packets each way: a binomial count
    // stays well within half to one and a half times its mean).
    for (const [dir, c, offered] of [['rx', rx, tun.rxPackets], ['tx', tx, stack.segmentsOut]] as const) {
      expect(offered, dir).toBeGreaterThan(20_000);
      expect(c.dropped / offered, `${dir} loss`).toBeGreaterThan(LOSS * 0.5);
      expect(c.dropped / offered, `${dir} loss`).toBeLessThan(LOSS * 1.5);
      expect(c.duplicated / offered, `${dir} duplication`).toBeGreaterThan(DUP * 0.5);
      expect(c.duplicated / offered, `${dir} duplication`).toBeLessThan(DUP * 1.5);
    }
    // With a fixed delay, every packet that is not dropped is held, and so is every duplicate (on
    // the way out, `dropped` also counts packets that found the device ring full after release).
    expect(rx.delayed).toBe(tun.rxPackets - rx.dropped + rx.duplicated);
    expect(tx.delayed).toBeGreaterThanOrEqual(stack.segmentsOut - tx.dropped + tx.duplicated);
    console.log(
      `integrity: ${(2 * TOTAL) / 1e6} MB in ${seconds.toFixed(1)} s; ` +
        `rx ${tun.rxPackets} packets (${rx.dropped} dropped, ${rx.duplicated} duplicated), ` +
        `tx ${stack.segmentsOut} (${tx.dropped} dropped, ${tx.duplicated} duplicated), ${retransmitted} retransmitted`,
    );
  }, 120_000);
});
