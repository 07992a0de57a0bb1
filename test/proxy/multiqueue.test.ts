/**
 * Two whole synfin stacks, each on one queue of a multi-queue TUN device (issue 24 item 5): the
 * kernel keeps each flow on one queue, so each stack sees whole connections and none of the other
 * stack's; every connection gets through, and both stacks carry some.
 */
import net from 'node:net';
import { afterEach, beforeAll, afterAll, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type Config } from '../../src/config.js';
import { createLogger } from '../../src/observability/log.js';
import { startSynfin, type Synfin } from '../../src/runtime.js';
import { Tun } from '../../src/tun/index.js';
import { configureDevice } from '../../src/tun/configure.js';
import { NetNs, destroyAllNetns, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';
import { ECHO_BURST_SCRIPT } from '../helpers/echo-burst.js';

const CONNECTIONS = 48;


let echo: net.Server;
let port = 0;
const synfins: Synfin[] = [];

beforeAll(async () => {
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  port = (echo.address() as net.AddressInfo).port;
});

afterAll(() => {
  echo.close();
});

afterEach(async () => {
  for (const s of synfins.splice(0)) await s.shutdown('test done');
  destroyAllNetns();
});

describeIfTun('two stacks on two queues of one device', () => {
  it('every connection gets through and both stacks carry some', async () => {
    const n = ((process.pid * 7) % 200) + 20;
    const ns = NetNs.create('mqp');
    const config: Config = {
      ...DEFAULT_CONFIG,
      tun: uniqueIfName('sfm'),
      addresses: [`198.19.${n}.1/24`],
      listenHost: '127.0.0.1',
      listenPort: 0,
      mslSeconds: 0.25,
      logLevel: 'silent',
      map: [`198.19.${n}.0/24=127.0.0.1`],
      shutdownGraceSeconds: 1,
    };
    const queues = Tun.openQueues({ name: config.tun }, 2);
    queues[0]!.moveToNetns(ns.name);
    configureDevice(queues[0]!, config);
    for (const tun of queues) synfins.push(await startSynfin(config, { tun, logger: createLogger('silent') }));

    const r = await ns.exec(process.execPath, ['-e', ECHO_BURST_SCRIPT], {
      env: { ...process.env, HOST: `198.19.${n}.2`, PORT: String(port), N: String(CONNECTIONS) },
    });
    expect(JSON.parse(r.stdout.trim())).toEqual({ ok: CONNECTIONS });

    const opened: number[] = [];
    let resets = 0;
    for (const s of synfins) {
      const text = await (await fetch(`${s.listenUrl}/metrics`)).text();
      opened.push(metricValue(text, 'synfin_tcp_connections_opened_total'));
      resets += metricValue(text, 'synfin_tcp_resets_total');
    }
    expect(opened[0]! + opened[1]!).toBe(CONNECTIONS);
    // 48 flows hashed all to one queue: probability 2^-47.
    expect(opened[0]).toBeGreaterThan(0);
    expect(opened[1]).toBeGreaterThan(0);
    expect(resets).toBe(0);
  }, 30000);
});
