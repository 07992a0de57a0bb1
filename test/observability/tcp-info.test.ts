/**
 * tcpInfo(): getsockopt(TCP_INFO) on the kernel sockets behind net.Socket, over loopback.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  KERNEL_TCP_STATE_NAMES,
  TCP_INFO_BYTES_RECEIVED,
  TCP_INFO_FIELDS,
  TCP_INFO_RTT_US,
  TCP_INFO_SND_CWND,
  TCP_INFO_STATE,
  TCP_INFO_TOTAL_RETRANS,
  tcpInfo,
} from '../../src/observability/tcp-info.js';

function fdOf(s: net.Socket): number {
  return (s as unknown as { _handle: { fd: number } })._handle.fd;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A loopback connection; resolves once the server has read `bytes` bytes the client wrote. */
async function connectedPair(bytes: number): Promise<{ client: net.Socket; server: net.Socket }> {
  let server!: net.Socket;
  let received = 0;
  let allIn!: () => void;
  const done = new Promise<void>((r) => (allIn = r));
  const srv = net.createServer((s) => {
    server = s;
    s.on('data', (d) => {
      received += d.length;
      if (received === bytes) allIn();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  cleanups.push(() => {
    client.destroy();
    server?.destroy();
    srv.close();
  });
  await new Promise<void>((r) => client.once('connect', r));
  client.write(Buffer.alloc(bytes, 1));
  await done;
  return { client, server };
}

describe('tcpInfo', () => {
  it('established socket reports state rtt and cwnd', async () => {
    const { client } = await connectedPair(1000);
    const out = new Float64Array(TCP_INFO_FIELDS);
    expect(tcpInfo(fdOf(client), out)).toBe(true);
    expect(KERNEL_TCP_STATE_NAMES[out[TCP_INFO_STATE]!]).toBe('ESTABLISHED');
    expect(out[TCP_INFO_RTT_US]).toBeGreaterThan(0);
    expect(out[TCP_INFO_SND_CWND]).toBeGreaterThanOrEqual(1);
    expect(out[TCP_INFO_TOTAL_RETRANS]).toBe(0);
  });

  it('receiver reports exactly the bytes received', async () => {
    const { server } = await connectedPair(100_000);
    const out = new Float64Array(TCP_INFO_FIELDS);
    expect(tcpInfo(fdOf(server), out)).toBe(true);
    expect(out[TCP_INFO_BYTES_RECEIVED]).toBe(100_000);
  });

  it('fd that is not a socket returns false', () => {
    const fd = fs.openSync('/dev/null', 'r');
    cleanups.push(() => fs.closeSync(fd));
    expect(tcpInfo(fd, new Float64Array(TCP_INFO_FIELDS))).toBe(false);
  });

  it('udp socket returns false', async () => {
    const s = dgram.createSocket('udp4');
    cleanups.push(() => s.close());
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const fd = (s as unknown as { _handle: { fd: number } })._handle.fd;
    expect(fd).toBeGreaterThan(2);
    expect(tcpInfo(fd, new Float64Array(TCP_INFO_FIELDS))).toBe(false);
  });

  it('negative or unused fd returns false', () => {
    expect(tcpInfo(1_000_000, new Float64Array(TCP_INFO_FIELDS))).toBe(false); // EBADF
    expect(tcpInfo(-1, new Float64Array(TCP_INFO_FIELDS))).toBe(false);
  });

  it('output array shorter than the fields throws range error', () => {
    expect(() => tcpInfo(0, new Float64Array(TCP_INFO_FIELDS - 1))).toThrow(RangeError);
  });
});
