/**
 * The kernel socket snapshot behind appState (sidecar) and synfin_upstream_sockets: the
 * fixed-column parser of /proc/net/tcp{,6}, and a read of this namespace's real table.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { KernelSockets, kernelKey, kernelKeyOf, parseProcNetTcp, type KernelState } from '../../src/observability/kernel-sockets.js';
import { parseAddress } from '../../src/wire/address.js';

const key = (l: string, lp: number, r: string, rp: number): string => kernelKeyOf(l, lp, r, rp)!;

const TCP4 = [
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
  '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0',
  '   1: 0100007F:D2A4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 20 4 30 10 -1',
  '  12: 0212A8C0:9C40 0112A8C0:0050 06 00000000:00000000 03:00000F9A 00000000     0        0 0 3 0000000000000000',
  '',
].join('\n');

const TCP6 = [
  '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
  // [2001:db8::1]:443 ← [2001:db8::2]:50000, CLOSE_WAIT
  '   0: B80D0120000000000000000001000000:01BB B80D0120000000000000000002000000:C350 08 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 20 4 0 10 -1',
  // ::ffff:127.0.0.1:8080 → ::ffff:127.0.0.1:40000, FIN_WAIT_2: keyed as IPv4, as Node reports it
  '   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:9C40 05 00000000:00000000 00:00000000 00000000     0        0 98 1 0000000000000000 20 4 0 10 -1',
  '',
].join('\n');

describe('parseProcNetTcp', () => {
  it('reads IPv4 lines: little-endian address words, hex ports, the state by number', () => {
    const m = new Map<string, KernelState>();
    parseProcNetTcp(TCP4, m);
    expect([...m]).toEqual([
      [key('127.0.0.1', 8080, '0.0.0.0', 0), 'LISTEN'],
      [key('127.0.0.1', 53924, '127.0.0.1', 8080), 'ESTABLISHED'],
      [key('192.168.18.2', 40000, '192.168.18.1', 80), 'TIME_WAIT'],
    ]);
  });

  it('reads IPv6 lines, and keys IPv4-mapped sockets as IPv4', () => {
    const m = new Map<string, KernelState>();
    parseProcNetTcp(TCP6, m);
    expect(m.get(key('2001:db8::1', 443, '2001:db8::2', 50000))).toBe('CLOSE_WAIT');
    expect(m.get(key('127.0.0.1', 8080, '127.0.0.1', 40000))).toBe('FIN_WAIT_2');
    expect(m.get(key('::ffff:127.0.0.1', 8080, '::ffff:127.0.0.1', 40000))).toBe('FIN_WAIT_2');
    expect(m.size).toBe(2);
  });

  it('skips truncated and foreign lines without throwing', () => {
    const m = new Map<string, KernelState>();
    parseProcNetTcp('header\n   0: 0100007F:1F90 0100\n garbage\n   1: zz\n\n', m);
    parseProcNetTcp('', m);
    parseProcNetTcp('no newline at all', m);
    expect(m.size).toBe(0);
  });
});

describe('kernelKey', () => {
  it('is the kernel\'s text of the two endpoints, from a flow\'s address words or from text', () => {
    expect(key('127.0.0.1', 53924, '127.0.0.1', 8080)).toBe('0100007F:D2A4 0100007F:1F90');
    const a = parseAddress('2001:db8::1')!;
    const b = parseAddress('2001:db8::2')!;
    expect(kernelKey(6, a.words, 443, b.words, 50000)).toBe('B80D0120000000000000000001000000:01BB B80D0120000000000000000002000000:C350');
    expect(kernelKeyOf('not an address', 1, '127.0.0.1', 2)).toBeNull();
  });
});

describe('KernelSockets', () => {
  it('finds a real loopback connection in this namespace, both ends, ESTABLISHED', async () => {
    const server = net.createServer(() => {});
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    try {
      let t = 0;
      const sockets = new KernelSockets(() => t);
      expect(sockets.snapshot.size).toBe(0);
      const snap = await sockets.fresh();
      expect(snap.get(key('127.0.0.1', client.localPort!, '127.0.0.1', port))).toBe('ESTABLISHED');
      expect(snap.get(key('127.0.0.1', port, '127.0.0.1', client.localPort!))).toBe('ESTABLISHED');
      // Fresh enough: no new read, the same map.
      t = 50;
      expect(await sockets.fresh(100)).toBe(snap);
      // Older than asked: read again; concurrent callers share one read.
      t = 500;
      const [a, b] = await Promise.all([sockets.fresh(100), sockets.fresh(100)]);
      expect(a).not.toBe(snap);
      expect(b).toBe(a);
    } finally {
      client.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('a missing file gives an empty snapshot, not an error', async () => {
    const sockets = new KernelSockets(() => 0, ['/nonexistent/tcp']);
    expect((await sockets.fresh()).size).toBe(0);
  });
});
