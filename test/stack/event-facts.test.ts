/**
 * Events carry their facts: whatever stage a connection is at when an event is published (a
 * pending SYN, a connection, a TIME-WAIT record), the identity it carries says its 4-tuple, its
 * times, its bytes and its handshake time, so subscribers never downcast.
 */
import { describe, expect, it } from 'vitest';
import type { ConnIdentity } from '../../src/tcp/events.js';
import { State } from '../../src/tcp/state.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { TcpFlag } from '../../src/wire/segment.js';
import { formatEndpoint } from '../../src/wire/packet.js';
import { APP_ISN, appPacket, stackHarness } from './stack-harness.js';

interface Seen {
  id: number;
  openedAt: number;
  client: string | null;
  destination: string | null;
  stateSince: number;
  bytesIn: number;
  bytesOut: number;
  retransmits: number;
  handshakeMs: number;
}

function facts(c: ConnIdentity): Seen {
  const f = c.flow;
  return {
    id: c.id,
    openedAt: c.openedAt,
    client: f === null ? null : formatEndpoint(f.family, f.remote, f.remotePort),
    destination: f === null ? null : formatEndpoint(f.family, f.local, f.localPort),
    stateSince: c.stateSince,
    bytesIn: c.bytesIn,
    bytesOut: c.bytesOut,
    retransmits: c.retransmits,
    handshakeMs: c.handshakeMs,
  };
}

describe('events carry the connection facts', () => {
  it('a transition, the TIME-WAIT record and its close carry the 4-tuple, times, bytes and handshake time', () => {
    const h = stackHarness({ mslMs: 1000 });
    const opened: Seen[] = [];
    const transitions: Array<{ to: State; seen: Seen }> = [];
    const closed: Seen[] = [];
    h.hub.subscribe({
      opened: (c) => opened.push(facts(c)),
      stateChange: (c, _from, to) => transitions.push({ to, seen: facts(c) }),
      closed: (c) => closed.push(facts(c)),
    });
    const t0 = h.clock.now();
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 40123 }));
    const req = h.syns.shift()!;
    h.clock.advance(7); // the dial
    const conn = h.stack.acceptPending(req, { onEstablished() {}, onData: (c, d) => c.consume(d.length, h.clock.now()), onFin() {}, onSendSpace() {}, onClosed() {} })!;
    h.stack.flush();
    const ourIss = h.link.take().at(-1)!.seg.seq;
    h.clock.advance(3); // the app's final ACK, with 5 bytes
    const data = appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.ACK | TcpFlag.PSH, srcPort: 40123 });
    h.send(data);
    // The harness's packets carry no payload: write 5 bytes toward the app and have them acknowledged.
    conn.write(Buffer.from('hello'));
    h.stack.wake(conn);
    h.stack.flush();
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 6), flags: TcpFlag.ACK, srcPort: 40123 }));
    h.clock.advance(10);
    h.closeToTimeWait(conn, seqAdd(ourIss, 5), { srcPort: 40123 });

    expect(opened).toEqual([
      { id: req.id, openedAt: t0, client: '198.18.0.1:40123', destination: '198.18.1.2:80', stateSince: t0, bytesIn: 0, bytesOut: 0, retransmits: 0, handshakeMs: -1 },
    ]);
    const established = transitions.find((t) => t.to === State.ESTABLISHED)!.seen;
    expect(established).toMatchObject({ id: req.id, openedAt: t0, client: '198.18.0.1:40123', destination: '198.18.1.2:80', handshakeMs: 10, stateSince: t0 + 7 });
    // During a transition, stateSince is still the old state's (the event's sinceMs): SYN_RECEIVED from the accept.
    const tw = transitions.find((t) => t.to === State.TIME_WAIT)!.seen;
    expect(tw).toMatchObject({ bytesOut: 5, handshakeMs: 10 });

    // 2×MSL later the record expires: its CLOSED carries what the connection had.
    h.clock.advance(2000);
    h.stack.runTimers();
    expect(closed).toEqual([
      { id: req.id, openedAt: t0, client: '198.18.0.1:40123', destination: '198.18.1.2:80', stateSince: t0 + 20, bytesIn: 0, bytesOut: 5, retransmits: 0, handshakeMs: 10 },
    ]);
  });

  it('a pending SYN dropped unanswered (the dial cap) is reported as forgotten, with its 4-tuple', () => {
    const h = stackHarness();
    const forgotten: Seen[] = [];
    const closed: Seen[] = [];
    h.hub.subscribe({ forgotten: (c) => forgotten.push(facts(c)), closed: (c) => closed.push(facts(c)) });
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 40200 }));
    const req = h.syns.shift()!;
    h.stack.dropPendingQuietly(req);
    expect(forgotten).toEqual([
      { id: req.id, openedAt: 1000, client: '198.18.0.1:40200', destination: '198.18.1.2:80', stateSince: 1000, bytesIn: 0, bytesOut: 0, retransmits: 0, handshakeMs: -1 },
    ]);
    expect(closed).toEqual([]);
  });
});
