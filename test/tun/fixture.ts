/**
 * A TUN device opened by the test process and moved into a fresh namespace, where the kernel sees
 * it as its route to a /24: the test plays the far end of that /24 by hand.
 *
 *   host side (this process)          namespace NS
 *   Tun fd  <───────────────────────>  dev sftXXXX  198.18.S.1/24  (the kernel, a client process)
 *                                      peer address 198.18.S.2 is "behind" the device = the test
 */
import { Tun, type TunOpenOptions } from '../../src/tun/index.js';
import { NetNs, uniqueIfName } from '../helpers/netns.js';
import { parseIpv4Tcp, type TcpPacket } from './packets.js';

export interface TunInNetns {
  tun: Tun;
  ns: NetNs;
  /** The kernel's address on the device, inside the namespace. */
  kernelAddr: string;
  /** An address routed through the device: packets to it come to the test. */
  peerAddr: string;
}

const openTuns = new Set<Tun>();

/** Opens a TUN device closed by closeAllTuns() (call it from afterEach). */
export function openTun(opts: TunOpenOptions = {}): Tun {
  const tun = Tun.open({ name: uniqueIfName('sft'), ...opts });
  openTuns.add(tun);
  return tun;
}

export function closeAllTuns(): void {
  for (const tun of openTuns) tun.close();
  openTuns.clear();
}

export function openTunInNetns(opts: TunOpenOptions & { mtu?: number } = {}): TunInNetns {
  const { mtu, ...openOpts } = opts;
  const tun = openTun(openOpts);
  const ns = NetNs.create('tun');
  const subnet = 1 + Math.floor(Math.random() * 250);
  const kernelAddr = `198.18.${subnet}.1`;
  const peerAddr = `198.18.${subnet}.2`;
  tun.moveToNetns(ns.name);
  if (mtu !== undefined) tun.setMtu(mtu);
  tun.addAddress(`${kernelAddr}/24`);
  tun.up();
  return { tun, ns, kernelAddr, peerAddr };
}

/** A received IPv4/TCP packet with where it lies in the rx buffer and its vnet fields. */
export interface RxTcp extends TcpPacket {
  offset: number;
  length: number;
  vnetFlags: number;
  gsoType: number;
  gsoSize: number;
  hdrLen: number;
  csumStart: number;
  csumOffset: number;
}

/**
 * Starts reading and calls `onTcp` for each IPv4/TCP packet (everything else, e.g. the kernel's
 * IPv6 router solicitations, is ignored). `onTcp` runs inside the batch callback, so the packet's
 * bytes (tun's rx buffer at offset) are valid only during the call.
 */
export function onTcpPackets(tun: Tun, onTcp: (p: RxTcp, buf: Buffer) => void): void {
  tun.start((batch) => {
    for (let i = 0; i < batch.count; i++) {
      const off = batch.offset[i]!;
      const len = batch.length[i]!;
      const p = parseIpv4Tcp(batch.buffer, off, len);
      if (p === null) continue;
      onTcp(
        {
          ...p,
          offset: off,
          length: len,
          vnetFlags: batch.flags[i]!,
          gsoType: batch.gsoType[i]!,
          gsoSize: batch.gsoSize[i]!,
          hdrLen: batch.hdrLen[i]!,
          csumStart: batch.csumStart[i]!,
          csumOffset: batch.csumOffset[i]!,
        },
        batch.buffer,
      );
    }
  });
}

/** Reserves a tx slot, lets `build` write the packet at its offset (returning its length), commits and flushes. */
export function transmit(tun: Tun, build: (buf: Buffer, off: number) => number): void {
  const off = tun.txReserve();
  if (off < 0) throw new Error('tx ring full');
  const len = build(tun.txBuffer, off);
  tun.txCommit(off, len);
  tun.txFlush();
}

/** A node script run in the namespace; its last stdout line is JSON. */
export async function runNodeIn(ns: NetNs, script: string, env: Record<string, string>): Promise<unknown> {
  const r = await ns.exec(process.execPath, ['-e', script], { env: { ...process.env, ...env } });
  const lines = r.stdout.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  if (r.code !== 0 || last === '') {
    throw new Error(`client exited with ${r.code ?? r.signal}: ${r.stdout} ${r.stderr}`);
  }
  return JSON.parse(last) as unknown;
}
