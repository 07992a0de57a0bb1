/**
 * Packet capture end to end: a transfer through synfin with --capture-buffer on, from the app's
 * kernel in a namespace to a server on this host. What GET /api/connections/:id/pcap and a live
 * GET /api/capture.pcap return, read back by tcpdump, matches packet for packet (flags, seq, ack,
 * length) what `tcpdump -i` captured on the TUN device in the same test, in each direction. With
 * capture off (the default) no ring exists until POST /api/capture turns it on.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPTURE_IN } from '../../src/stack/capture.js';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

const RESPONSE = crypto.randomBytes(3 * 1024 * 1024);
const UPLOAD = crypto.randomBytes(400 * 1024);

/** One packet as tcpdump -nn -S prints it, without its time: the fields compared. */
interface Pkt {
  from: string;
  to: string;
  flags: string;
  seq: string;
  ack: string;
  length: number;
}

function readPcap(file: string, filter: string): Pkt[] {
  const text = execFileSync('tcpdump', ['-r', file, '-nn', '-tt', '-S', filter], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const m = /^\d+\.\d+ IP6? (\S+) > (\S+): Flags \[([^\]]*)\](?:, seq (\d+(?::\d+)?))?(?:, ack (\d+))?.*, length (\d+)/.exec(l);
      if (m === null) throw new Error(`tcpdump line not understood: ${l}`);
      return { from: m[1]!, to: m[2]!.replace(/:$/, ''), flags: m[3]!, seq: m[4] ?? '', ack: m[5] ?? '', length: Number(m[6]) };
    });
}

/** Start tcpdump on the TUN device in the namespace; resolves once it is capturing. */
function startTcpdump(env: SynfinEnv, file: string, filter: string): Promise<ChildProcess> {
  const child = env.ns.spawn('tcpdump', ['-i', env.synfin.tun.name, '-w', file, '-U', '--immediate-mode', '-Z', 'root', '-nn', '-s', '256', '-B', '32768', filter]);
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 15_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening on')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tcpdump exited (${code}): ${err}`));
    });
  });
}

/** SIGINT tcpdump and wait for it; returns its summary ("N packets captured ... 0 dropped by kernel"). */
function stopTcpdump(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let err = '';
    child.stderr!.removeAllListeners('data');
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.removeAllListeners('exit');
    child.on('exit', () => resolve(err));
    child.kill('SIGINT');
  });
}

function byDirection(pkts: Pkt[], appSide: string): { fromApp: Pkt[]; toApp: Pkt[] } {
  return { fromApp: pkts.filter((p) => p.from.startsWith(appSide)), toApp: pkts.filter((p) => !p.from.startsWith(appSide)) };
}

describeIfTun('packet capture through synfin', () => {
  const servers: http.Server[] = [];
  /** The server's port on 127.0.0.1 and on ::1 (where the IPv6 namespace's destinations are mapped). */
  const ports = { v4: 0, v6: 0 };
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-capture-'));
    fs.writeFileSync(path.join(dir, 'upload.bin'), UPLOAD);
    for (const [key, host] of [['v4', '127.0.0.1'], ['v6', '::1']] as const) {
      const server = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-length': RESPONSE.length, connection: 'close' });
          res.end(RESPONSE);
        });
      });
      await new Promise<void>((r) => server.listen(0, host, r));
      ports[key] = (server.address() as AddressInfo).port;
      servers.push(server);
    }
  });

  afterAll(async () => {
    for (const server of servers) await new Promise<void>((r) => server.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
    destroyAllNetns();
  });

  describe('capture off (the default)', () => {
    let env: SynfinEnv;
    beforeAll(async () => {
      env = await startSynfinEnv();
    });
    afterAll(async () => {
      await env?.close();
    });

    it('allocates no ring, records nothing through a transfer, and says so in the API', async () => {
      const curl = await env.ns.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{size_download}', `http://${env.serverAddr}:${ports.v4}/`]);
      expect(curl.stdout).toBe(String(RESPONSE.length));
      expect(env.synfin.capture.ring).toBeNull();
      expect((env.synfin.stack as unknown as { capture: unknown }).capture).toBeNull();
      expect(await env.api('/api/capture')).toMatchObject({ enabled: false, active: false, bufferBytes: 0, records: 0 });
      const res = await fetch(`${env.synfin.listenUrl}/api/connections/1/pcap`);
      expect(res.status).toBe(409);
      // Turned on at runtime from loopback, then off again: the ring comes and goes.
      const on = await fetch(`${env.synfin.listenUrl}/api/capture`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enabled: true, bufferBytes: '1MiB' }) });
      expect(on.status).toBe(200);
      expect(env.synfin.capture.ring?.size).toBe(1024 * 1024);
      const again = await env.ns.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{size_download}', `http://${env.serverAddr}:${ports.v4}/`]);
      expect(again.stdout).toBe(String(RESPONSE.length));
      expect(env.synfin.capture.ring!.records).toBeGreaterThan(10);
      const off = await fetch(`${env.synfin.listenUrl}/api/capture`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enabled: false }) });
      expect(off.status).toBe(200);
      expect(env.synfin.capture.ring).toBeNull();
    });
  });

  for (const ipv6 of [false, true]) {
    describe(ipv6 ? 'IPv6' : 'IPv4', () => {
      let env: SynfinEnv;
      beforeAll(async () => {
        env = await startSynfinEnv({ captureBuffer: 32 * 1024 * 1024, captureSnaplen: 64 }, { ipv6 });
      });
      afterAll(async () => {
        await env?.close();
      });

      it("a connection's pcap and a live capture match tcpdump on the TUN device, packet for packet", async () => {
        const dev = path.join(dir, `dev${ipv6 ? 6 : 4}.pcap`);
        const port = ipv6 ? ports.v6 : ports.v4;
        const filter = `tcp port ${port}`;
        const tcpdump = await startTcpdump(env, dev, filter);
        // A live capture over the same time.
        const live = fetch(`${env.synfin.listenUrl}/api/capture.pcap?seconds=4`).then(async (r) => {
          expect(r.status).toBe(200);
          expect(r.headers.get('content-type')).toBe('application/vnd.tcpdump.pcap');
          return Buffer.from(await r.arrayBuffer());
        });
        await new Promise((r) => setTimeout(r, 300));
        const host = ipv6 ? `[${env.serverAddr}]` : env.serverAddr;
        const curl = await env.ns.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{size_download}', '--data-binary', `@${path.join(dir, 'upload.bin')}`, `http://${host}:${port}/`]);
        expect(curl.stderr).toBe('');
        expect(curl.stdout).toBe(String(RESPONSE.length));
        // The closing handshake's last ACKs, then stop tcpdump.
        await new Promise((r) => setTimeout(r, 700));
        const summary = await stopTcpdump(tcpdump);
        const livePcap = await live;
        expect(summary).toMatch(/^0 packets dropped by kernel/m);

        // The connection's id: the one its SYN from the app was recorded with.
        const ring = env.synfin.capture.ring!;
        const ids = new Set<number>();
        ring.forEach(0, (rec) => {
          if (rec.direction === CAPTURE_IN && rec.connId !== 0) ids.add(rec.connId);
        });
        expect([...ids]).toHaveLength(1);
        const id = [...ids][0]!;
        const res = await fetch(`${env.synfin.listenUrl}/api/connections/${id}/pcap`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe('application/vnd.tcpdump.pcap');
        const api = path.join(dir, `api${ipv6 ? 6 : 4}.pcap`);
        fs.writeFileSync(api, Buffer.from(await res.arrayBuffer()));
        const livePath = path.join(dir, `live${ipv6 ? 6 : 4}.pcap`);
        fs.writeFileSync(livePath, livePcap);

        const onDevice = readPcap(dev, filter);
        const fromApi = readPcap(api, filter);
        const fromLive = readPcap(livePath, filter);
        // A real transfer: handshake, data both ways, both FINs.
        expect(onDevice.length).toBeGreaterThan(20);
        expect(onDevice[0]!.flags).toBe('S');
        expect(onDevice.filter((p) => p.flags.includes('F'))).toHaveLength(2);
        expect(onDevice.filter((p) => p.from.startsWith(env.clientAddr) && p.length > 1000).length).toBeGreaterThan(0);
        expect(onDevice.filter((p) => !p.from.startsWith(env.clientAddr) && p.length > 1000).length).toBeGreaterThan(0);
        // Payload on the wire: both bodies plus the HTTP heads (under 1 KiB), each byte once unless retransmitted.
        const heads = onDevice.reduce((sum, p) => sum + p.length, 0) - UPLOAD.length - RESPONSE.length;
        expect(heads).toBeGreaterThan(0);
        // Within each direction the order is the device's; across directions the device and the
        // stack see reads and writes at different moments.
        const appSide = env.clientAddr;
        const want = byDirection(onDevice, appSide);
        expect(byDirection(fromApi, appSide)).toEqual(want);
        expect(byDirection(fromLive, appSide)).toEqual(want);
        // tshark reads the same files.
        const frames = execFileSync('tshark', ['-r', api, '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
          .trim()
          .split('\n');
        expect(frames).toHaveLength(fromApi.length);
      });
    });
  }
});

