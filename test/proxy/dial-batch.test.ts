/**
 * The dials of one input batch (src/proxy/forwarder.ts onSyn): their connect(2) calls wait for the
 * end of the batch and are made together, after the batch's own segments are on the link, and
 * their SYN-ACKs still leave before the flush that ends the batch returns (no extra turn of the
 * event loop). A connect made in the middle of the batch ran the destination's side of the
 * handshake inside the call, and the next packet's JavaScript ran from cold caches after it.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UpstreamForwarder } from '../../src/proxy/forwarder.js';
import { DestinationPolicy } from '../../src/proxy/policy.js';
import { UpstreamSockets, type UpstreamSocket } from '../../src/proxy/upstream.js';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';
import { Stack } from '../../src/stack/stack.js';
import { defaultTcpConfig } from '../../src/tcp/defaults.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { TcpFlag } from '../../src/wire/segment.js';
import { APP_ISN, DEST, MemoryLink, appPacket } from '../stack/stack-harness.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** An upstream socket that connected inside connect(2) (a destination on this host). */
function connectedSocket(localPort: number, log: string[]): UpstreamSocket {
  return {
    handler: null,
    connecting: false,
    destroyed: false,
    writable: true,
    writableLength: 0,
    registered: false,
    localFamily: 4,
    remoteFamily: 4,
    localWords: Uint32Array.of(0, 0, 0, 0x0a000001),
    localPort,
    remoteWords: Uint32Array.of(0, 0, 0, DEST),
    remotePort: 80,
    localAddress: '10.0.0.1',
    remoteAddress: '198.18.1.2',
    write: (_c: Buffer[], _n: number, bytes: number) => bytes,
    writeOne: (chunk: Buffer) => chunk.length,
    pause() {},
    resume() {},
    register() {
      log.push(`register ${localPort}`);
    },
    end() {},
    destroy() {},
    resetAndDestroy() {},
  } as unknown as UpstreamSocket;
}

function world() {
  const log: string[] = [];
  const link = new MemoryLink();
  const commit = link.txCommit.bind(link);
  link.txCommit = (offset: number, length: number): void => {
    commit(offset, length);
    const { seg, flow } = link.sent.at(-1)!;
    const flags = seg.flags & TcpFlag.SYN ? 'SYN-ACK' : seg.flags & TcpFlag.FIN ? 'FIN' : 'ACK';
    log.push(`${flags} to ${flow.dstPort}`);
  };
  const clock = new ManualClock(1000);
  const hub = new EventHub();
  const proxy = new UpstreamForwarder({ clock, policy: new DestinationPolicy({}), connectTimeoutMs: 5000, idleTimeoutMs: 0, maxDialsInFlight: 64, events: hub });
  let nextPort = 50000;
  vi.spyOn(UpstreamSockets.prototype, 'connect').mockImplementation(() => {
    const port = nextPort++;
    log.push(`connect ${port}`);
    return connectedSocket(port, log);
  });
  const stack = new Stack({ link, clock, tcp: defaultTcpConfig({}), forwarder: proxy, events: hub, setTimer: () => null, clearTimer: () => {} });
  proxy.attach(stack);
  return { log, link, stack, proxy };
}

describe('the dials of one input batch', () => {
  it("connect after the batch's own segments are flushed, back to back, and their SYN-ACKs leave before the sockets' registrations and before the flush returns", async () => {
    const { log, link, stack, proxy } = world();
    // An ESTABLISHED connection on port 40000 (its dial made when its SYN's batch ended).
    stack.input(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 40000 }), 0, 60, false);
    stack.flush();
    const synAck = link.take().at(-1)!;
    expect(synAck.seg.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
    const first = appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(synAck.seg.seq, 1), flags: TcpFlag.ACK, srcPort: 40000 });
    stack.input(first, 0, first.length, false);
    stack.flush();
    expect(stack.connectionCount).toBe(1);
    log.length = 0;
    // One batch: a SYN; on the open connection an ACK of bytes never sent, which RFC 9293
    // §3.10.7.4 answers with an ACK at once; another SYN.
    const batch = [
      appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 40001 }),
      appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(synAck.seg.seq, 1000), flags: TcpFlag.ACK, srcPort: 40000 }),
      appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 40002 }),
    ];
    for (const pkt of batch) stack.input(pkt, 0, pkt.length, false);
    // Nothing is dialled while the batch is being read.
    expect(log).toEqual([]);
    expect(proxy.dialsInFlight).toBe(2);
    stack.flush();
    expect(log).toEqual([
      // The batch's own segment first,
      'ACK to 40000',
      // then the dials' connect(2) calls back to back; once both are accepted, their SYN-ACKs
      // (what the apps' connect() waits for), then the sockets' registrations.
      'connect 50001',
      'connect 50002',
      'SYN-ACK to 40001',
      'SYN-ACK to 40002',
      'register 50001',
      'register 50002',
    ]);
    expect(proxy.dialsInFlight).toBe(0);
    // Nothing was left for a later turn.
    log.length = 0;
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual([]);
  });

  it('drops a dial whose SYN the app reset before the batch ended, without connecting', () => {
    const { log, stack, proxy } = world();
    const syn = appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 40003 });
    // RFC 9293 §3.10.7.2: the app's RST for its own SYN (sequence number just after it).
    const rst = appPacket({ seq: seqAdd(APP_ISN, 1), flags: TcpFlag.RST, srcPort: 40003 });
    stack.input(syn, 0, syn.length, false);
    stack.input(rst, 0, rst.length, false);
    stack.flush();
    expect(log).toEqual([]);
    expect(proxy.dialsInFlight).toBe(0);
    expect(stack.connectionCount).toBe(0);
  });
});
