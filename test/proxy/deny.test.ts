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
import { onesSum } from '../../src/wire/checksum.js';
import { metricValue, startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

const PEER = path.join(import.meta.dirname, '../reliability/peer.mjs');

/** A raw ICMP socket: prints 'ready', then each ICMP packet (with its IP header) as hex, for argv[1] seconds. */
const ICMP_SNIFFER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(float(sys.argv[1]))
print('ready', flush=True)
try:
    while True:
        print(s.recv(65535).hex(), flush=True)
except socket.timeout:
    pass
`;
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
  it(`on the wire the refusal is ICMP destination unreachable, administratively prohibited (type 3 code 13), quoting the SYN`, async () => {
    // A raw ICMP socket in the app's namespace sees every ICMP message the TUN device delivers
    // (the kernel turns code 13 into EHOSTUNREACH, as it does host unreachable: the errno alone
    // cannot tell them apart).
    const sniffer = env.ns.spawn('python3', ['-c', ICMP_SNIFFER, '15'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    sniffer.stdout!.on('data', (d) => (out += d));
    try {
      const deadline = Date.now() + 5000;
      while (!out.includes('ready')) {
        if (Date.now() > deadline) throw new Error('the ICMP sniffer did not start (python3 and a raw socket are needed)');
        await new Promise((r) => setTimeout(r, 20));
      }
      const r = JSON.parse((await env.ns.exec(process.execPath, [PEER, 'connect', METADATA, '80', '5000'])).stdout.trim().split('\n').at(-1)!) as ConnectResult;
      expect(r.code).toBe('EHOSTUNREACH');
      const prohibited = async () => {
        for (const line of out.split('\n')) {
          if (!/^[0-9a-f]+$/.test(line)) continue;
          const p = Buffer.from(line, 'hex');
          const ihl = (p[0]! & 0x0f) * 4;
          const icmp = p.subarray(ihl);
          if (icmp[0] === 3 && icmp[1] === 13) return { p, icmp };
        }
        return null;
      };
      let found = await prohibited();
      for (let i = 0; found === null && i < 50; i++) {
        await new Promise((res) => setTimeout(res, 20));
        found = await prohibited();
      }
      expect(found, `ICMP seen: ${out}`).not.toBeNull();
      const { p, icmp } = found!;
      // To the app, with a valid ICMP checksum (RFC 792).
      expect(`${p[16]}.${p[17]}.${p[18]}.${p[19]}`).toBe(env.clientAddr);
      expect(onesSum(icmp, 0, icmp.length)).toBe(0xffff);
      // The quoted datagram (RFC 792, RFC 1812 §4.3.2.3): the app's SYN to METADATA:80.
      const quoted = icmp.subarray(8);
      expect(quoted[0]! >> 4).toBe(4);
      expect(quoted[9]).toBe(6);
      expect(`${quoted[12]}.${quoted[13]}.${quoted[14]}.${quoted[15]}`).toBe(env.clientAddr);
      expect(`${quoted[16]}.${quoted[17]}.${quoted[18]}.${quoted[19]}`).toBe(METADATA);
      const qihl = (quoted[0]! & 0x0f) * 4;
      expect(quoted.readUInt16BE(qihl + 2)).toBe(80);
      // No other unreachable code for this SYN (host unreachable, code 1, would also be EHOSTUNREACH).
      expect(out.split('\n').filter((l) => /^[0-9a-f]+$/.test(l)).map((l) => Buffer.from(l, 'hex')).filter((b) => b[(b[0]! & 0x0f) * 4] === 3 && b[(b[0]! & 0x0f) * 4 + 1] !== 13)).toEqual([]);
    } finally {
      sniffer.kill();
    }
  }, 30_000);
});
