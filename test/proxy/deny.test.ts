/**
 * --deny through the real proxy, with the sidecar example's default (the cloud metadata address):
 * the app's connection is refused at its SYN, synfin dials nothing upstream, and other
 * destinations still go through. The policy itself (CIDRs, deny over allow, mapping) is unit
 * tested in policy.test.ts.
 */
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { UpstreamSockets } from '../../src/proxy/upstream.js';
import { formatAddress } from '../../src/wire/address.js';
import { metricValue, startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

const PEER = path.join(import.meta.dirname, '../reliability/peer.mjs');
const METADATA = '169.254.169.254';

interface ConnectResult {
  ok: boolean;
  code: string | null;
  bytes: number;
  ms: number;
}

describeIfTun('--deny through the proxy', () => {
  let env: SynfinEnv;
  let echo: net.Server;
  let echoPort: number;
  /** Every kernel connect made in this process while the test runs (the proxy's dials among them). */
  const dials: Array<{ host: string | undefined; port: number | undefined }> = [];

  beforeAll(async () => {
    echo = net.createServer((s) => s.on('data', (d) => s.write(d)).on('end', () => s.end()).on('error', () => {}));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as net.AddressInfo).port;
    // Watch the proxy's upstream dials (src/proxy/upstream.ts). Should the deny list ever fail,
    // the dial to the metadata address goes to a closed local port instead of leaving this host:
    // the test fails on the record, never on real traffic.
    const realConnect = UpstreamSockets.prototype.connect;
    vi.spyOn(UpstreamSockets.prototype, 'connect').mockImplementation(function (this: UpstreamSockets, ...args: Parameters<UpstreamSockets['connect']>) {
      const [handler, family, words, port, bind] = args;
      const host = formatAddress(family, words);
      dials.push({ host, port });
      if (host === METADATA) return realConnect.call(this, handler, 4, new Uint32Array([0, 0, 0, 0x7f000001]), 1, bind);
      return realConnect.apply(this, args);
    });
    env = await startSynfinEnv({ deny: [`${METADATA}/32`], routes: [`${METADATA}/32`] });
  }, 60_000);

  afterAll(async () => {
    vi.restoreAllMocks();
    await env?.close();
    echo?.close();
    destroyAllNetns();
  });

  it(`the app's connection to ${METADATA} is refused at its SYN and nothing is dialled; an allowed destination still works`, async () => {
    const peer = async (host: string, port: number) =>
      JSON.parse((await env.ns.exec(process.execPath, [PEER, 'connect', host, String(port), '5000'])).stdout.trim().split('\n').at(-1)!) as ConnectResult;

    const denied = await peer(METADATA, 80);
    expect(denied.ok).toBe(false);
    expect(denied.code).toBe('EHOSTUNREACH');
    expect(denied.ms).toBeLessThan(1000);
    expect(dials.filter((d) => d.host === METADATA)).toEqual([]);

    // The same app reaches an allowed destination, and that dial is seen: the record above is
    // not empty for want of looking.
    const allowed = await peer(env.serverAddr, echoPort);
    expect(allowed).toMatchObject({ ok: true, code: null });
    expect(dials.filter((d) => d.host === '127.0.0.1' && d.port === echoPort)).toHaveLength(1);

    const m = await env.metrics();
    expect(metricValue(m, 'synfin_upstream_connect_duration_seconds_count')).toBe(1);
    expect(metricValue(m, 'synfin_tcp_handshake_duration_seconds_count', { result: 'upstream_unreachable' })).toBe(1);
    expect(metricValue(m, 'synfin_tcp_handshake_duration_seconds_count', { result: 'ok' })).toBe(1);
  }, 30_000);
});
