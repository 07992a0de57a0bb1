/**
 * Real packets through a real TUN device: the kernel (in a namespace of its own) sends to an
 * address routed through the device, and the test answers by hand.
 */
import { afterAll, afterEach, expect, it } from 'vitest';
import {
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VNET_HDR_LEN,
  writeVnetNone,
  writeVnetTcpGso,
} from '../../src/tun/index.js';
import { destroyAllNetns, leftovers } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { closeAllTuns, onTcpPackets, openTunInNetns, runNodeIn, transmit, type RxTcp } from './fixture.js';
import { ACK, FIN, PSH, RST, SYN, tcpChecksumOk, writeIpv4Tcp } from './packets.js';

const PORT = 4321;

// Connects to PEER:PORT and prints {"code": ...} on error, {"connected": true} on success.
const CONNECT_SCRIPT = `
const s = require('net').connect({ host: process.env.PEER, port: +process.env.PORT });
s.on('connect', () => { console.log(JSON.stringify({ connected: true })); process.exit(0); });
s.on('error', (e) => { console.log(JSON.stringify({ code: e.code })); process.exit(0); });
`;

// Connects, writes SEND bytes, reads until RECV bytes arrived, ends, and prints what it got.
const BULK_SCRIPT = `
const s = require('net').connect({ host: process.env.PEER, port: +process.env.PORT });
const send = +process.env.SEND, want = +process.env.RECV;
let got = 0, wrote = send === 0, sum = 0;
function done() { if (wrote && got >= want) { console.log(JSON.stringify({ got, sum })); s.end(); process.exit(0); } }
s.on('connect', () => { if (send > 0) s.write(Buffer.alloc(send, 0x61), () => { wrote = true; done(); }); done(); });
s.on('data', (d) => { got += d.length; for (const b of d) sum += b; done(); });
s.on('error', (e) => { console.log(JSON.stringify({ code: e.code, got })); process.exit(0); });
`;

/** Our initial sequence number: just below 2^32 so the bulk tests cross the wrap. */
const ISS = 0xffffff00;

function u32(n: number): number {
  return n >>> 0;
}

afterEach(() => {
  closeAllTuns();
  destroyAllNetns();
});

describeIfTun('TUN device with real kernel traffic', () => {
  it('rx kernel syn arrives as ipv4 tcp syn with valid checksum', async () => {
    const { tun, ns, kernelAddr, peerAddr } = openTunInNetns({ vnetHdr: false });
    const syn = new Promise<{ p: RxTcp; checksumOk: boolean }>((resolve) => {
      onTcpPackets(tun, (p, buf) => {
        if (p.dport === PORT && (p.flags & SYN) !== 0) resolve({ p, checksumOk: tcpChecksumOk(buf, p.offset, p) });
      });
    });
    ns.spawn(process.execPath, ['-e', CONNECT_SCRIPT], { env: { ...process.env, PEER: peerAddr, PORT: String(PORT) } });

    const { p, checksumOk } = await syn;
    expect(p.src).toBe(kernelAddr);
    expect(p.dst).toBe(peerAddr);
    expect(p.flags).toBe(SYN);
    expect(p.sport).toBeGreaterThan(0);
    expect(checksumOk).toBe(true);
    expect(tun.counters.rxPackets).toBeGreaterThanOrEqual(1);
  });

  it('rx with vnet hdr kernel syn carries partial checksum offsets', async () => {
    const { tun, ns, peerAddr } = openTunInNetns({ vnetHdr: true });
    const syn = new Promise<RxTcp>((resolve) => {
      onTcpPackets(tun, (p) => {
        if (p.dport === PORT && (p.flags & SYN) !== 0) resolve(p);
      });
    });
    ns.spawn(process.execPath, ['-e', CONNECT_SCRIPT], { env: { ...process.env, PEER: peerAddr, PORT: String(PORT) } });

    const p = await syn;
    expect(p.flags).toBe(SYN);
    expect(p.gsoType).toBe(VIRTIO_NET_HDR_GSO_NONE);
    // TUN_F_CSUM: the kernel leaves the TCP checksum for "hardware": csum_start = the TCP header.
    expect(p.vnetFlags & VIRTIO_NET_HDR_F_NEEDS_CSUM).toBe(VIRTIO_NET_HDR_F_NEEDS_CSUM);
    expect(p.csumStart).toBe(p.ipHeaderLen);
    expect(p.csumOffset).toBe(16);
  });

  it.each([false, true])('tx rst ack to syn makes connect fail with econnrefused (vnetHdr %s)', async (vnetHdr) => {
    const { tun, ns, peerAddr } = openTunInNetns({ vnetHdr });
    onTcpPackets(tun, (p) => {
      if (p.dport !== PORT || p.flags !== SYN) return;
      // RFC 9293 §3.10.7.1: a SYN to a closed port gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
      transmit(tun, (buf, off) => {
        const ip = vnetHdr ? off + VNET_HDR_LEN : off;
        if (vnetHdr) writeVnetNone(buf, off);
        const len = writeIpv4Tcp(buf, ip, {
          src: p.dst,
          dst: p.src,
          sport: p.dport,
          dport: p.sport,
          seq: 0,
          ack: u32(p.seq + 1),
          flags: RST | ACK,
          window: 0,
        });
        return (vnetHdr ? VNET_HDR_LEN : 0) + len;
      });
    });

    const result = await runNodeIn(ns, CONNECT_SCRIPT, { PEER: peerAddr, PORT: String(PORT) });
    expect(result).toEqual({ code: 'ECONNREFUSED' });
    // One 40-byte RST|ACK per SYN the client sent (it may have retransmitted); vnet header not counted.
    expect(tun.counters.txPackets).toBeGreaterThanOrEqual(1);
    expect(tun.counters.txBytes).toBe(40 * tun.counters.txPackets);
    expect(tun.counters.txDropped).toBe(0);
  });

  it('tx flushes pass the device only where and how many: the ring was given to it once (bindTx)', async () => {
    const { tun, ns, peerAddr } = openTunInNetns({ vnetHdr: false });
    const device = (tun as unknown as { device: Record<string, (...a: unknown[]) => unknown> }).device;
    const calls: string[] = [];
    for (const name of ['writeBatch', 'writeBound']) {
      const real = device[name]!.bind(device);
      // The addon's methods are read-only on the prototype: shadowed on the instance.
      Object.defineProperty(device, name, {
        value: (...args: unknown[]): unknown => {
          calls.push(`${name}/${args.length}`);
          return real(...args);
        },
      });
    }
    onTcpPackets(tun, (p) => {
      if (p.dport !== PORT || p.flags !== SYN) return;
      transmit(tun, (buf, off) =>
        writeIpv4Tcp(buf, off, { src: p.dst, dst: p.src, sport: p.dport, dport: p.sport, seq: 0, ack: u32(p.seq + 1), flags: RST | ACK, window: 0 }),
      );
    });
    const result = await runNodeIn(ns, CONNECT_SCRIPT, { PEER: peerAddr, PORT: String(PORT) });
    expect(result).toEqual({ code: 'ECONNREFUSED' });
    expect(calls.length).toBeGreaterThanOrEqual(1);
    expect(new Set(calls)).toEqual(new Set(['writeBound/2']));
    expect(tun.counters.txPackets).toBe(calls.length);
    expect(tun.counters.txDropped).toBe(0);
  });

  it('rx after device deleted emits ERR_TUN_IO and stops', async () => {
    const { tun, ns } = openTunInNetns({ vnetHdr: true });
    const failed = new Promise<Error & { code?: string }>((resolve) => tun.once('error', resolve));
    onTcpPackets(tun, () => {});
    ns.ip(['link', 'delete', 'dev', tun.name]);
    const err = await failed;
    expect(err.code).toBe('ERR_TUN_IO');
  });
});

interface BulkResult {
  client: unknown;
  /** Payload bytes the client sent that we received in order. */
  received: number;
  largest: RxTcp | null;
}

/**
 * Plays the server side of one connection by hand: answers the SYN with a SYN-ACK (MSS `mss`,
 * window scale 7, window 65535 << 7), ACKs everything in order, and, once the handshake is done,
 * sends `sendBytes` of 0x62 as one GSO super-segment (vnet) or plain segment. Resolves when the
 * client process exited and its FIN (or a RST) arrived.
 */
async function bulkExchange(
  fx: ReturnType<typeof openTunInNetns>,
  clientSends: number,
  sendBytes: number,
  gsoSize: number,
  mss = 1460,
): Promise<BulkResult> {
  const { tun, ns, peerAddr } = fx;
  const vnet = tun.vnetHdr;
  let clientIsn = -1;
  let rcvNxt = 0;
  let sndNxt = u32(ISS + 1);
  let established = false;
  let largest: RxTcp | null = null;
  let finSeen!: () => void;
  const fin = new Promise<void>((resolve) => (finSeen = resolve));

  const reply = (p: RxTcp, flags: number, payloadLen: number, opts: { mss?: number; wscale?: number } = {}): void => {
    transmit(tun, (buf, off) => {
      const ip = vnet ? off + VNET_HDR_LEN : off;
      const gso = payloadLen > gsoSize;
      const len = writeIpv4Tcp(buf, ip, {
        src: p.dst,
        dst: p.src,
        sport: p.dport,
        dport: p.sport,
        seq: flags & SYN ? ISS : sndNxt,
        ack: rcvNxt,
        flags,
        window: 65535,
        ...opts,
        payloadLen,
        fill: 0x62,
        checksum: gso ? 'partial' : 'full',
      });
      if (vnet) {
        if (gso) writeVnetTcpGso(buf, off, false, 20, 20, gsoSize);
        else writeVnetNone(buf, off);
      }
      return (vnet ? VNET_HDR_LEN : 0) + len;
    });
  };

  onTcpPackets(tun, (p) => {
    if (p.dport !== PORT) return;
    if (p.flags & SYN) {
      if (clientIsn === -1) clientIsn = p.seq;
      rcvNxt = u32(clientIsn + 1);
      reply(p, SYN | ACK, 0, { mss, ...(p.wscale >= 0 ? { wscale: 7 } : {}) });
      return;
    }
    if (p.flags & RST) {
      finSeen();
      return;
    }
    if (!established && p.flags & ACK && p.ack === u32(ISS + 1)) {
      established = true;
      if (sendBytes > 0) {
        reply(p, ACK | PSH, sendBytes);
        sndNxt = u32(sndNxt + sendBytes);
      }
    }
    if (p.payloadLen > 0 && (largest === null || p.length > largest.length)) largest = p;
    if (p.seq === rcvNxt) {
      rcvNxt = u32(rcvNxt + p.payloadLen);
      if (p.flags & FIN) {
        rcvNxt = u32(rcvNxt + 1);
        finSeen();
      }
    }
    if (p.payloadLen > 0 || p.flags & FIN) reply(p, ACK, 0);
  });

  const client = await runNodeIn(ns, BULK_SCRIPT, {
    PEER: peerAddr,
    PORT: String(PORT),
    SEND: String(clientSends),
    RECV: String(sendBytes),
  });
  await fin;
  return { client, received: u32(rcvNxt - clientIsn - 2), largest };
}

describeIfTun('TUN device offloads (vnet header, TSO)', () => {
  it('rx tso kernel sends gso tcpv4 super segments larger than mtu', async () => {
    const fx = openTunInNetns({ vnetHdr: true });
    expect(fx.tun.mtu).toBe(1500);
    const r = await bulkExchange(fx, 200_000, 0, 1400);

    expect(r.client).toEqual({ got: 0, sum: 0 });
    expect(r.received).toBe(200_000);
    const big = r.largest!;
    expect(big.length).toBeGreaterThan(1500);
    expect(big.gsoType).toBe(VIRTIO_NET_HDR_GSO_TCPV4);
    expect(big.gsoSize).toBeGreaterThan(0);
    expect(big.gsoSize).toBeLessThanOrEqual(1460);
    expect(big.hdrLen).toBe(big.ipHeaderLen + big.tcpHeaderLen);
  });

  it('tx gso 20kb super segment with partial checksum reaches the client whole', async () => {
    const fx = openTunInNetns({ vnetHdr: true });
    const r = await bulkExchange(fx, 0, 20_000, 1400);

    expect(r.client).toEqual({ got: 20_000, sum: 20_000 * 0x62 });
    expect(fx.tun.counters.txDropped).toBe(0);
  });

  it('rx big mtu without vnet hdr delivers packets larger than 1500', async () => {
    const fx = openTunInNetns({ vnetHdr: false, mtu: 65000 });
    expect(fx.tun.mtu).toBe(65000);
    const r = await bulkExchange(fx, 200_000, 0, 1400, 65000 - 40);

    expect(r.received).toBe(200_000);
    expect(r.largest!.length).toBeGreaterThan(1500);
    expect(r.largest!.gsoType).toBe(0);
  });
});

describeIfTun('TUN test clean-up', () => {
  afterAll(() => {
    // After every suite of this file: nothing it created may remain.
    expect(leftovers()).toEqual([]);
  });

  it('cleanup leaves no namespace or device behind', () => {
    const fx = openTunInNetns({ vnetHdr: true });
    expect(fx.ns.links()).toContain(fx.tun.name);
    closeAllTuns();
    destroyAllNetns();
    expect(leftovers()).toEqual([]);
  });
});
