/**
 * --max-time-wait through the real proxy: destinations that close first leave synfin in TIME-WAIT
 * toward the app; with a bound of 2 the third such connection goes to CLOSED instead, and the
 * metrics say so consistently.
 */
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue, startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

const PEER = path.join(import.meta.dirname, '../reliability/peer.mjs');

describeIfTun('--max-time-wait through the proxy', () => {
  let env: SynfinEnv;
  let srv: net.Server;
  let port: number;

  beforeAll(async () => {
    // The destination speaks first and closes first.
    srv = net.createServer((s) => {
      s.on('error', () => {});
      s.end('bye\n');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    port = (srv.address() as net.AddressInfo).port;
    env = await startSynfinEnv({ maxTimeWait: 2, mslSeconds: 30 });
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    srv?.close();
    destroyAllNetns();
  });

  it('the third destination-first close skips TIME-WAIT: counted, and the transitions add up', async () => {
    const m0 = await env.metrics();
    expect(m0).toMatch(/^synfin_tcp_time_wait_overflow_total 0$/m);
    for (let i = 0; i < 3; i++) {
      const r = JSON.parse((await env.ns.exec(process.execPath, [PEER, 'read', env.serverAddr, String(port)])).stdout.trim().split('\n').at(-1)!) as { bytes: number; code: string | null };
      expect(r).toMatchObject({ bytes: 4, code: null });
    }
    // The app's last ACK/FIN may still be in flight: wait until nothing is open but TIME-WAIT.
    let m = '';
    for (let t = 0; t < 50; t++) {
      m = await env.metrics();
      const open = metricValue(m, 'synfin_tcp_connections') - metricValue(m, 'synfin_tcp_connections', { state: 'LISTEN' }) - metricValue(m, 'synfin_tcp_connections', { state: 'TIME_WAIT' });
      if (open === 0 && metricValue(m, 'synfin_tcp_connections_closed_total') === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(metricValue(m, 'synfin_tcp_time_wait_overflow_total')).toBe(1);
    expect(metricValue(m, 'synfin_tcp_connections', { state: 'TIME_WAIT' })).toBe(2);
    const into = (to: string) => metricValue(m, 'synfin_tcp_state_transitions_total', { to });
    const outOf = (from: string) => metricValue(m, 'synfin_tcp_state_transitions_total', { from });
    expect(into('TIME_WAIT')).toBe(2);
    expect(outOf('TIME_WAIT')).toBe(0);
    expect(into('CLOSED')).toBe(1);
    // Every state's gauge is what its transitions leave in it.
    for (const state of ['SYN_RECEIVED', 'ESTABLISHED', 'FIN_WAIT_1', 'FIN_WAIT_2', 'CLOSING', 'TIME_WAIT']) {
      expect(into(state) - outOf(state), state).toBe(metricValue(m, 'synfin_tcp_connections', { state }));
    }
    expect(metricValue(m, 'synfin_tcp_connections_closed_total', { reason: 'fin' })).toBe(1);
    const rows = await env.api<{ connections: Array<{ state: string }> }>('/api/connections');
    expect(rows.connections.map((c) => c.state)).toEqual(['TIME_WAIT', 'TIME_WAIT']);
  }, 60_000);
});
