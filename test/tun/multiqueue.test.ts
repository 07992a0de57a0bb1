/**
 * A multi-queue TUN device (IFF_MULTI_QUEUE, issue 24 item 5): several fds on one device, the
 * kernel spreading flows over them. How it picks (drivers/net/tun.c): tun_automq_select_queue looks
 * the packet's symmetric flow hash up in the device's flow table, which every write on a queue
 * updates (tun_flow_update), and without an entry takes queue (hash × queues) >> 32.
 */
import { afterEach, expect, it } from 'vitest';
import { TunBusyError, TunOpenError } from '../../src/errors.js';
import { MAX_QUEUES, Tun } from '../../src/tun/index.js';
import { NetNs, destroyAllNetns, ipSync, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { parseIpv4Tcp, ACK, SYN, writeIpv4Tcp, type TcpPacket } from './packets.js';

const PORT = 4321;
const FLOWS = 64;

// Opens FLOWS connections to PEER:PORT at once (the kernel gives each its own source port) and
// keeps them pending: nobody answers, so each SYN is retransmitted after 1 s, 3 s, ...
const MANY_SYNS_SCRIPT = `
const net = require('net');
for (let i = 0; i < +process.env.FLOWS; i++) net.connect({ host: process.env.PEER, port: +process.env.PORT }).on('error', () => {});
setTimeout(() => {}, 60000);
`;

// One connection; once connected it waits a little and sends one byte.
const ONE_BYTE_SCRIPT = `
const s = require('net').connect({ host: process.env.PEER, port: +process.env.PORT });
s.on('connect', () => setTimeout(() => s.write('x'), 100));
s.on('error', () => {});
setTimeout(() => {}, 60000);
`;

const open: Tun[] = [];

afterEach(() => {
  for (const t of open.splice(0)) t.close();
  destroyAllNetns();
});

function track(tuns: Tun[]): Tun[] {
  open.push(...tuns);
  return tuns;
}

/** `count` queues of one device moved into a fresh namespace with 198.18.S.1/24; the test plays .2. */
function queuesInNetns(count: number): { queues: Tun[]; ns: NetNs; kernelAddr: string; peerAddr: string } {
  const queues = track(Tun.openQueues({ name: uniqueIfName('sfq'), vnetHdr: false }, count));
  const ns = NetNs.create('mq');
  const subnet = 1 + Math.floor(Math.random() * 250);
  // Every queue is attached before the move: TUNSETIFF looks the name up in the opener's namespace.
  queues[0]!.moveToNetns(ns.name);
  queues[1]!.addAddress(`198.18.${subnet}.1/24`);
  queues[0]!.up();
  return { queues, ns, kernelAddr: `198.18.${subnet}.1`, peerAddr: `198.18.${subnet}.2` };
}

/** Calls onTcp(queue index, packet) for every IPv4/TCP packet read on any of the queues. */
function readAll(queues: Tun[], onTcp: (q: number, p: TcpPacket) => void): void {
  queues.forEach((tun, q) => {
    tun.start((batch) => {
      for (let i = 0; i < batch.count; i++) {
        const p = parseIpv4Tcp(batch.buffer, batch.offset[i]!, batch.length[i]!);
        if (p !== null && p.dport === PORT) onTcp(q, p);
      }
    });
  });
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

describeIfTun('multi-queue TUN device', () => {
  it('opens two queues of one device, and the kernel counts two queues', () => {
    const queues = track(Tun.openQueues({ name: uniqueIfName('sfq') }, 2));
    expect(queues).toHaveLength(2);
    expect(queues[0]!.name).toBe(queues[1]!.name);
    expect(queues.every((q) => q.multiQueue && q.vnetHdr)).toBe(true);
    expect(queues[0]!.fd).not.toBe(queues[1]!.fd);
    const info = (JSON.parse(ipSync(['-d', '-j', 'link', 'show', 'dev', queues[0]!.name])) as Array<{
      linkinfo?: { info_kind?: string; info_data?: { multi_queue?: boolean; numqueues?: number } };
    }>)[0]!.linkinfo;
    expect(info?.info_kind).toBe('tun');
    expect(info?.info_data?.multi_queue).toBe(true);
    expect(info?.info_data?.numqueues).toBe(2);
  });

  it('the single queue default stays: a second open of the name is busy, a multi-queue open is refused', () => {
    const [one] = track([Tun.open({ name: uniqueIfName('sfq') })]);
    expect(one!.multiQueue).toBe(false);
    expect(() => Tun.open({ name: one!.name })).toThrow(TunBusyError);
    expect(() => Tun.open({ name: one!.name, multiQueue: true })).toThrow(TunOpenError);
  });

  it('a multi-queue device refuses a single-queue open of its name', () => {
    const queues = track(Tun.openQueues({ name: uniqueIfName('sfq') }, 1));
    expect(() => Tun.open({ name: queues[0]!.name })).toThrow(/multi-queue/);
  });

  it('a queue asking for a vnet header setting other than the device has is refused', () => {
    const queues = track(Tun.openQueues({ name: uniqueIfName('sfq'), vnetHdr: true }, 1));
    let err: unknown;
    try {
      track([Tun.open({ name: queues[0]!.name, multiQueue: true, vnetHdr: false })]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TunOpenError);
    expect(((err as Error).cause as Error).message).toContain('its vnet header setting differs');
    const more = track([Tun.open({ name: queues[0]!.name, multiQueue: true, vnetHdr: true })]);
    expect(more[0]!.vnetHdr).toBe(true);
  });

  it('openQueues refuses a queue count outside one to the kernel maximum', () => {
    expect(() => Tun.openQueues({ name: uniqueIfName('sfq') }, 0)).toThrow(RangeError);
    expect(() => Tun.openQueues({ name: uniqueIfName('sfq') }, MAX_QUEUES + 1)).toThrow(RangeError);
  });

  it('the kernel spreads many flows over both queues and keeps each flow on one queue', async () => {
    const { queues, ns, peerAddr } = queuesInNetns(2);
    // Moving one queue's device moved them all: ip commands through either run in the namespace.
    expect(queues[1]!.netns).toBe(ns.name);
    expect(queues[1]!.linkState().up).toBe(true);
    // Source port -> the queues its SYNs arrived on, in order.
    const seen = new Map<number, number[]>();
    readAll(queues, (q, p) => {
      if ((p.flags & SYN) === 0) return;
      const list = seen.get(p.sport) ?? [];
      list.push(q);
      seen.set(p.sport, list);
    });
    ns.spawn(process.execPath, ['-e', MANY_SYNS_SCRIPT], {
      env: { ...process.env, PEER: peerAddr, PORT: String(PORT), FLOWS: String(FLOWS) },
    });
    // Each flow's first SYN and its retransmission 1 s later (RFC 6298 §2.1: initial RTO 1 s).
    const twoEach = (): boolean => seen.size === FLOWS && [...seen.values()].every((l) => l.length >= 2);
    await until(twoEach, 8000);
    expect(seen.size).toBe(FLOWS);
    expect(twoEach()).toBe(true);
    for (const [, list] of seen) expect(new Set(list).size).toBe(1);
    const perQueue = [0, 0];
    for (const [, list] of seen) perQueue[list[0]!]!++;
    // 64 flows all hashed to one queue: probability 2^-63.
    expect(perQueue[0]).toBeGreaterThan(0);
    expect(perQueue[1]).toBeGreaterThan(0);
  }, 15000);

  it('a flow follows the queue its replies are written on', async () => {
    const { queues, ns, peerAddr } = queuesInNetns(2);
    let synQueue = -1;
    let dataQueue = -1;
    readAll(queues, (q, p) => {
      if ((p.flags & SYN) !== 0 && synQueue < 0) {
        synQueue = q;
        // Answer on the OTHER queue: the write records that queue for the flow (tun_flow_update).
        const other = queues[1 - q]!;
        const off = other.txReserve();
        const len = writeIpv4Tcp(other.txBuffer, off, {
          src: p.dst,
          dst: p.src,
          sport: p.dport,
          dport: p.sport,
          seq: 1000,
          ack: (p.seq + 1) >>> 0,
          flags: SYN | ACK,
          window: 65535,
          mss: 1460,
        });
        other.txCommit(off, len);
        other.txFlush();
      } else if (p.payloadLen > 0 && dataQueue < 0) {
        dataQueue = q;
      }
    });
    ns.spawn(process.execPath, ['-e', ONE_BYTE_SCRIPT], { env: { ...process.env, PEER: peerAddr, PORT: String(PORT) } });
    await until(() => dataQueue >= 0, 5000);
    expect(synQueue).toBeGreaterThanOrEqual(0);
    expect(dataQueue).toBe(1 - synQueue);
  }, 10000);
});
