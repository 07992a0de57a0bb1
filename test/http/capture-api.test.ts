/**
 * The capture API's guards and answers (src/http/capture.ts) over a real ring: POST /api/capture
 * only from loopback peers and only with a JSON body; pcap files only for requesters that may see
 * addresses, and behind the Host check like every /api route; a live capture's service filter.
 */
import { apiParts, buildApi } from '../helpers/api-app.js';
import { afterEach, describe, expect, it } from 'vitest';
import { type ApiAddressMode } from '../../src/http/app.js';
import { captureRoutes, LINKTYPE_RAW, PCAP_CONTENT_TYPE } from '../../src/http/capture.js';
import { CAPTURE_IN, CaptureControl, type CaptureRing } from '../../src/stack/capture.js';

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

function setup(opts: { bufferBytes?: number; apiAddresses?: ApiAddressMode; serviceOfConn?: (id: number) => string | null } = {}) {
  const installed: Array<CaptureRing | null> = [];
  const control = new CaptureControl({ setCapture: (r) => installed.push(r) }, { bufferBytes: opts.bufferBytes ?? 0, snaplen: 128 });
  const app = buildApi(apiParts(), {
    apiAddresses: opts.apiAddresses ?? 'loopback',
    plugins: [captureRoutes({ control, apiAddresses: opts.apiAddresses ?? 'loopback', serviceOfConn: opts.serviceOfConn })],
  });
  cleanup.push(() => app.close());
  return { app, control, installed };
}

/** A minimal IPv4 TCP packet (ports and flags only matter here) recorded for `connId`. */
function record(ring: CaptureRing, connId: number, srcPort = 40000): void {
  const p = Buffer.alloc(40);
  p[0] = 0x45;
  p.writeUInt16BE(40, 2);
  p[9] = 6;
  p.writeUInt32BE(0xc6120001, 12);
  p.writeUInt32BE(0xc6120102, 16);
  p.writeUInt16BE(srcPort, 20);
  p.writeUInt16BE(80, 22);
  p[32] = 0x50;
  p[33] = 0x10;
  const n = ring.recordIn(p, 0, p.length);
  ring.tagConnection(n, ring.lastOffset, connId);
}

const LOCAL = { remoteAddress: '127.0.0.1' };
const REMOTE = { remoteAddress: '10.20.30.40' };

describe('POST /api/capture', () => {
  it('refuses a peer that is not on loopback, and changes nothing', async () => {
    const { app, control, installed } = setup();
    const res = await app.inject({ method: 'POST', url: '/api/capture', payload: { enabled: true }, ...REMOTE });
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toMatch(/loopback only/);
    expect(control.ring).toBeNull();
    expect(installed).toEqual([]);
  });

  it('turns capture on with a size (bytes or with a unit) and snaplen, then off, from loopback (IPv4 and IPv6)', async () => {
    const { app, control, installed } = setup();
    const on = await app.inject({ method: 'POST', url: '/api/capture', payload: { enabled: true, bufferBytes: '2MiB', snaplen: 32 }, ...LOCAL });
    expect(on.statusCode).toBe(200);
    expect(on.json()).toMatchObject({ enabled: true, active: true, bufferBytes: 2 * 1024 * 1024, snaplen: 32, records: 0 });
    expect(control.ring!.size).toBe(2 * 1024 * 1024);
    expect(installed).toEqual([control.ring]);
    const off = await app.inject({ method: 'POST', url: '/api/capture', payload: { enabled: false }, remoteAddress: '::1' });
    expect(off.statusCode).toBe(200);
    expect(off.json()).toMatchObject({ enabled: false, active: false, bufferBytes: 0 });
    expect(control.ring).toBeNull();
    expect(installed.at(-1)).toBeNull();
  });

  it('refuses sizes out of range and bodies that are not JSON objects (a cross-site form post)', async () => {
    const { app, control } = setup();
    for (const bufferBytes of ['lots', 100, '2GiB']) {
      const res = await app.inject({ method: 'POST', url: '/api/capture', payload: { enabled: true, bufferBytes }, ...LOCAL });
      expect(res.statusCode, String(bufferBytes)).toBe(400);
    }
    const text = await app.inject({ method: 'POST', url: '/api/capture', payload: 'enabled=true', headers: { 'content-type': 'text/plain' }, ...LOCAL });
    expect(text.statusCode).toBeGreaterThanOrEqual(400);
    expect(text.statusCode).toBeLessThan(500);
    expect(control.ring).toBeNull();
  });
});

describe('GET /api/connections/:id/pcap', () => {
  it('says capture is off (409) when no ring exists, and GET /api/capture shows nothing allocated', async () => {
    const { app } = setup();
    expect((await app.inject({ url: '/api/connections/1/pcap', ...LOCAL })).statusCode).toBe(409);
    expect((await app.inject({ url: '/api/capture', ...LOCAL })).json()).toEqual({
      enabled: false,
      active: false,
      bufferBytes: 0,
      snaplen: 128,
      records: 0,
      overwritten: 0,
    });
  });

  it("returns the connection's packets as pcap (LINKTYPE_RAW), 404 for a connection with none", async () => {
    const { app, control } = setup({ bufferBytes: 1 << 20 });
    record(control.ring!, 7, 40007);
    record(control.ring!, 8, 40008);
    record(control.ring!, 7, 40007);
    const res = await app.inject({ url: '/api/connections/7/pcap', ...LOCAL });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(PCAP_CONTENT_TYPE);
    const body = res.rawPayload;
    expect(body.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(body.readUInt32LE(20)).toBe(LINKTYPE_RAW);
    expect(body.length).toBe(24 + 2 * (16 + 40));
    expect(body.readUInt16BE(24 + 16 + 20)).toBe(40007);
    expect((await app.inject({ url: '/api/connections/9/pcap', ...LOCAL })).statusCode).toBe(404);
    expect((await app.inject({ url: '/api/connections/x/pcap', ...LOCAL })).statusCode).toBe(400);
  });

  it('is refused to requesters that may not see addresses, and to a foreign Host (421)', async () => {
    const loopbackOnly = setup({ bufferBytes: 1 << 20 });
    record(loopbackOnly.control.ring!, 1);
    expect((await loopbackOnly.app.inject({ url: '/api/connections/1/pcap', ...REMOTE })).statusCode).toBe(403);
    expect((await loopbackOnly.app.inject({ url: '/api/capture.pcap?seconds=1', ...REMOTE })).statusCode).toBe(403);
    expect((await loopbackOnly.app.inject({ url: '/api/connections/1/pcap', headers: { host: 'attacker.example' }, ...LOCAL })).statusCode).toBe(421);
    const none = setup({ bufferBytes: 1 << 20, apiAddresses: 'none' });
    record(none.control.ring!, 1);
    expect((await none.app.inject({ url: '/api/connections/1/pcap', ...LOCAL })).statusCode).toBe(403);
  });
});

describe('GET /api/capture.pcap', () => {
  it('streams the packets written during its seconds, of the named service only, and turns capture off again', async () => {
    const services = new Map([
      [1, 'shop/db'],
      [2, 'shop/cache'],
    ]);
    const { app, control } = setup({ serviceOfConn: (id) => services.get(id) ?? null });
    const pending = app.inject({ url: '/api/capture.pcap?seconds=0.5&service=shop/db', ...LOCAL });
    await new Promise((r) => setTimeout(r, 100));
    const ring = control.ring!;
    expect(ring).not.toBeNull();
    record(ring, 1, 41001);
    record(ring, 2, 41002);
    record(ring, 0, 41000);
    await new Promise((r) => setTimeout(r, 150));
    record(ring, 1, 41001);
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(PCAP_CONTENT_TYPE);
    const body = res.rawPayload;
    expect(body.length).toBe(24 + 2 * (16 + 40));
    expect(body.readUInt16BE(24 + 16 + 20)).toBe(41001);
    expect(body.readUInt16BE(24 + 56 + 16 + 20)).toBe(41001);
    let seen = 0;
    ring.forEach(0, (r) => {
      if (r.direction === CAPTURE_IN) seen++;
    });
    expect(seen).toBe(4);
    // Capture was off before: the live capture's ring is gone with it.
    expect(control.ring).toBeNull();
  });

  it('refuses a service filter when no services are named, and seconds out of range', async () => {
    const { app } = setup();
    expect((await app.inject({ url: '/api/capture.pcap?service=x', ...LOCAL })).statusCode).toBe(400);
    expect((await app.inject({ url: '/api/capture.pcap?seconds=301', ...LOCAL })).statusCode).toBe(400);
    expect((await app.inject({ url: '/api/capture.pcap?seconds=0', ...LOCAL })).statusCode).toBe(400);
  });
});
