/**
 * Accounting against the real proxy: after connections of every kind of close have come and gone
 * (clean closes, resets, bulk both ways), nothing stays charged to --memory-limit.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { closeServer, lastJson, listen, PEER, startEnv, waitFor, type Env } from './env.js';

describeIfTun('--memory-limit accounting: nothing stays charged once connections are gone', () => {
  let env: Env;
  let echo: Awaited<ReturnType<typeof listen>>;

  beforeAll(async () => {
    echo = await listen((s) => s.on('data', (d) => s.write(d)).on('end', () => s.end()));
    env = await startEnv({});
    await env.warmUp(echo.port);
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    await closeServer(echo);
    destroyAllNetns();
  }, 30_000);

  it('bulk exchanges and short connections leave synfin_memory_bytes{used} at 0', async () => {
    const r = await env.ns.exec(process.execPath, [PEER, 'exchange', env.serverAddr, String(echo.port), '16', String(2_000_000)]);
    // (An echo server: what comes back is the id and the data, not the keyed reply the integrity
    // server sends; the bytes are what matters here.)
    const res = lastJson<{ results: { recvBytes: number }[] }>(r.stdout);
    expect(res.results).toHaveLength(16);
    for (const x of res.results) expect(x.recvBytes).toBeGreaterThanOrEqual(2_000_000);
    for (let i = 0; i < 20; i++) await env.ns.exec(process.execPath, [PEER, 'connect', env.serverAddr, String(echo.port), '5000']);
    await env.settle();
    const budget = env.synfin.budget;
    expect(budget.peak).toBeGreaterThan(0);
    await waitFor('nothing charged', () => budget.used, (u) => u === 0, 5000);
  }, 120_000);
});
