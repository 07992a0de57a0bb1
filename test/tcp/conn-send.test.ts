import { describe, expect, it } from 'vitest';
import { State } from '../../src/tcp/state.js';
import {
  ACK,
  PSH,
  RST,
  type FixtureOpts,
  type Sent,
  type T,
  bytes,
  established,
  l,
  out,
  r,
  recv,
  recvNothing,
  send,
  seg,
} from './helpers.js';

const MSS = 1460;

/** The data segment carrying bytes [from, to) of `data` (stream offset 0 = LOCAL_SEQ+1). */
function dataSeg(data: Buffer, from: number, to: number, extra: Partial<Sent> = {}): Sent {
  const flags = to === data.length ? ACK | PSH : ACK;
  return out({ seq: l(1 + from), payload: data.subarray(from, to), flags, ...extra });
}

/** Write `n` bytes and drain what goes out at time `at`. */
function writeAndSend(t: T, n: number, at = 0, seed = 1): { data: Buffer; sent: Sent[] } {
  const data = bytes(n, seed);
  t.conn.write(data);
  return { data, sent: recv(t.conn, at) };
}

describe('sending data', () => {
  it('RFC 9293 §3.7.1: data is cut into segments of the effective MSS, PSH on the last', () => {
    const t = established();
    const { data, sent } = writeAndSend(t, 3000);
    expect(sent).toEqual([dataSeg(data, 0, 1460), dataSeg(data, 1460, 2920), dataSeg(data, 2920, 3000)]);
  });

  it('no Nagle: a small write goes out at once even with data in flight', () => {
    const t = established();
    writeAndSend(t, 10);
    const { sent } = writeAndSend(t, 5, 0, 2);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.seq).toBe(l(11));
  });

  it('RFC 5681 §3.1: the initial window limits the first flight (IW10 = 14600 bytes here)', () => {
    const t = established();
    const { sent } = writeAndSend(t, 30_000);
    expect(sent).toHaveLength(10);
    expect(sent.reduce((n, s) => n + s.payload.length, 0)).toBe(14_600);
  });

  it('RFC 9293 §3.8.6.2.1: the peer window limits what is sent; sender SWS avoidance holds back a small tail', () => {
    const t = established();
    send(t.conn, seg({ window: 2000 }));
    const { data, sent } = writeAndSend(t, 30_000);
    expect(sent).toEqual([dataSeg(data, 0, 1460)]);
  });

  it('copyPayload reads across the chunks given to write()', () => {
    const t = established();
    t.conn.write(Buffer.from('abc'));
    t.conn.write(Buffer.from('defg'));
    t.conn.write(Buffer.from('h'));
    expect(recv(t.conn, 0)).toEqual([out({ flags: ACK | PSH, payload: 'abcdefgh' })]);
  });

  it('acknowledged bytes count in bytesOut and free the send buffer', () => {
    const t = established();
    writeAndSend(t, 3000);
    send(t.conn, seg({ ack: l(1461) }));
    expect(t.conn.bytesOut).toBe(1460);
    expect(t.conn.sendBuffered).toBe(1540);
  });

  it('write() returns false at cfg.sndBufBytes and onSendSpace fires when acknowledgments free space', () => {
    const t = established({ cfg: { sndBufBytes: 4000 } });
    expect(t.conn.write(bytes(3000))).toBe(true);
    expect(t.conn.write(bytes(1000))).toBe(false);
    recv(t.conn, 0);
    expect(t.h.sendSpace).toBe(0);
    send(t.conn, seg({ ack: l(1461) }));
    expect(t.h.sendSpace).toBe(1);
    send(t.conn, seg({ ack: l(2921) }));
    expect(t.h.sendSpace).toBe(1);
  });

  it('GSO: with cfg.gsoMaxBytes > MSS one large segment is emitted with gsoSize = MSS, within cwnd', () => {
    const t = established({ cfg: { gsoMaxBytes: 16_000 } });
    const { data, sent } = writeAndSend(t, 20_000);
    expect(sent).toEqual([dataSeg(data, 0, 14_600, { gsoSize: MSS })]);
  });

  it('GSO: a large segment ending the data may end with a short piece', () => {
    const t = established({ cfg: { gsoMaxBytes: 16_000 } });
    const { data, sent } = writeAndSend(t, 5000);
    expect(sent).toEqual([dataSeg(data, 0, 5000, { gsoSize: MSS })]);
  });
});

describe('retransmission timeout (RFC 6298)', () => {
  // The fixtures' handshake takes 0 ms: RTO starts at cfg.minRtoMs = 200 ms (RFC 6298 §2.4).
  it('RFC 6298 §5.4/5.5: on RTO the first unacknowledged segment is resent and RTO doubles', () => {
    const t = established();
    const { data } = writeAndSend(t, 3000);
    recvNothing(t.conn, 199);
    expect(recv(t.conn, 200)).toEqual([dataSeg(data, 0, 1460)]);
    recvNothing(t.conn, 599);
    expect(recv(t.conn, 600)).toEqual([dataSeg(data, 0, 1460)]);
    expect(t.ev.retransmits).toEqual(['rto', 'rto']);
  });

  it('RFC 5681 §3.1: after RTO cwnd is one segment; each ACK lets more of the old flight go again (go-back-N)', () => {
    const t = established();
    const { data } = writeAndSend(t, 4000);
    recv(t.conn, 1000);
    send(t.conn, seg({ ack: l(1461) }), 1100);
    expect(recv(t.conn, 1100)).toEqual([dataSeg(data, 1460, 2920), dataSeg(data, 2920, 4000)]);
    expect(t.ev.retransmits).toEqual(['rto', 'rto', 'rto']);
  });

  it('RFC 6298 §5.3: an ACK of new data restarts the timer for the rest', () => {
    const t = established();
    writeAndSend(t, 3000);
    send(t.conn, seg({ ack: l(1461) }), 800);
    expect(t.conn.pollAt()).toBe(0);
    recv(t.conn, 800);
    expect(t.conn.pollAt()).toBe(800 + t.conn.snd.rtt.rto);
    expect(t.conn.snd.rtt.rto).toBeGreaterThan(200);
  });

  it('RFC 6298 §5.2: the timer stops when everything is acknowledged', () => {
    const t = established();
    writeAndSend(t, 100);
    send(t.conn, seg({ ack: l(101) }), 50);
    recv(t.conn, 50);
    expect(t.conn.pollAt()).toBe(Infinity);
  });

  it('RFC 6298 §3 (Karn): no RTT sample from a retransmitted segment', () => {
    const t = established();
    writeAndSend(t, 100);
    recv(t.conn, 1000);
    send(t.conn, seg({ ack: l(101) }), 1050);
    expect(t.ev.rtts).toEqual([]);
  });

  it('RFC 6298 §2: an ACK of a segment sent once gives an RTT sample', () => {
    const t = established();
    writeAndSend(t, 100, 10);
    send(t.conn, seg({ ack: l(101) }), 60);
    // Second sample (the handshake gave 0): SRTT = 7/8·0 + 1/8·50 (RFC 6298 §2.3).
    expect(t.ev.rtts).toEqual([6.25]);
  });

  it('RFC 9293 §3.8.3 R2: after cfg.maxRetries retransmissions the connection is reset (retransmit_timeout)', () => {
    const t = established({ cfg: { maxRetries: 2 } });
    writeAndSend(t, 100);
    expect(recv(t.conn, 1000)).toHaveLength(1);
    expect(recv(t.conn, 3000)).toHaveLength(1);
    expect(recv(t.conn, 7000)).toEqual([out({ seq: l(101), flags: RST | ACK, window: 0 })]);
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.conn.closeReason).toBe('retransmit_timeout');
    expect(t.ev.resets).toEqual([['sent', 'retransmit_timeout']]);
    expect(t.ev.closes).toEqual(['retransmit_timeout']);
  });

  it('RFC 9293 §3.10.7.4: after an RTO, pure ACKs still carry <SEQ=SND.MAX> (acceptable to the peer)', () => {
    const t = established();
    writeAndSend(t, 3000);
    expect(recv(t.conn, 200)).toHaveLength(1);
    expect(t.conn.snd.nxt).toBe(l(1461));
    send(t.conn, seg({ payload: 'x' }), 210);
    expect(recv(t.conn, 250)).toEqual([out({ seq: l(3001), ack: r(2), window: 65534 })]);
  });

  it('RFC 6582 §4.1: duplicate ACKs for data sent before an RTO do not start a fast retransmit', () => {
    const t = established();
    writeAndSend(t, 5 * MSS);
    recv(t.conn, 1000);
    for (let i = 0; i < 4; i++) send(t.conn, seg(), 1010);
    expect(recv(t.conn, 1010)).toEqual([]);
    expect(t.ev.retransmits).toEqual(['rto']);
  });
});

describe('fast retransmit and NewReno recovery (RFC 5681 §3.2, RFC 6582)', () => {
  function fiveOut(): { t: T; data: Buffer } {
    const t = established();
    const { data, sent } = writeAndSend(t, 5 * MSS);
    expect(sent).toHaveLength(5);
    return { t, data };
  }

  it('RFC 5681 §3.2: the third duplicate ACK retransmits the segment at SND.UNA', () => {
    const { t, data } = fiveOut();
    send(t.conn, seg({ ack: l(1 + MSS) }), 10);
    send(t.conn, seg({ ack: l(1 + MSS) }), 11);
    send(t.conn, seg({ ack: l(1 + MSS) }), 12);
    recvNothing(t.conn, 12);
    send(t.conn, seg({ ack: l(1 + MSS) }), 13);
    expect(recv(t.conn, 13)).toEqual([dataSeg(data, MSS, 2 * MSS)]);
    expect(t.ev.retransmits).toEqual(['fast']);
  });

  it('RFC 5681 §2 (e): an ACK that changes the window is not a duplicate', () => {
    const { t } = fiveOut();
    send(t.conn, seg({ window: 60_000 }), 10);
    send(t.conn, seg({ window: 50_000 }), 11);
    send(t.conn, seg({ window: 40_000 }), 12);
    recvNothing(t.conn, 12);
  });

  it('RFC 6582 §3.2 step 3: a partial ACK retransmits the next unacknowledged segment at once', () => {
    const { t, data } = fiveOut();
    for (let i = 0; i < 3; i++) send(t.conn, seg(), 10);
    expect(recv(t.conn, 10)).toEqual([dataSeg(data, 0, MSS)]);
    send(t.conn, seg({ ack: l(1 + 2 * MSS) }), 20);
    expect(recv(t.conn, 20)[0]).toEqual(dataSeg(data, 2 * MSS, 3 * MSS));
    expect(t.ev.retransmits).toEqual(['fast', 'fast']);
  });

  it('RFC 6582 §3.2 step 3: a full ACK ends recovery; cwnd = ssthresh', () => {
    const { t } = fiveOut();
    for (let i = 0; i < 3; i++) send(t.conn, seg(), 10);
    recv(t.conn, 10);
    expect(t.conn.snd.recovery).toBe(1);
    send(t.conn, seg({ ack: l(1 + 5 * MSS) }), 20);
    expect(t.conn.snd.recovery).toBe(0);
    expect(t.conn.snd.cc.cwnd).toBe(t.conn.snd.cc.ssthresh);
  });

  it('RFC 5681 §3.2 step 4: further duplicate ACKs in recovery inflate the window and release new data', () => {
    const { t } = fiveOut();
    const more = bytes(2 * MSS, 9);
    t.conn.write(more);
    for (let i = 0; i < 3; i++) send(t.conn, seg(), 10);
    // ssthresh = 5 MSS / 2 → cwnd 2.5 MSS + 3 MSS inflation < 5 MSS in flight: only the retransmission.
    expect(recv(t.conn, 10)).toHaveLength(1);
    // One more: cwnd = 2.5 + 4 MSS, flight 5 MSS: room for one new segment.
    send(t.conn, seg(), 11);
    const sent = recv(t.conn, 11);
    expect(sent.map((s) => s.seq)).toEqual([l(1 + 5 * MSS)]);
  });
});

describe("the end of the initial slow start, reported once (events.slowStartExit)", () => {
  it('a retransmission timeout ends it: timeout, and a second timeout says nothing more', () => {
    const t = established();
    writeAndSend(t, 3000);
    recv(t.conn, 200);
    expect(t.ev.slowStartExits).toEqual(['timeout']);
    recv(t.conn, 600);
    expect(t.ev.retransmits).toEqual(['rto', 'rto']);
    expect(t.ev.slowStartExits).toEqual(['timeout']);
  });

  it('three duplicate ACKs end it: loss, and a timeout after that says nothing more', () => {
    const t = established();
    writeAndSend(t, 5 * MSS);
    for (let i = 0; i < 4; i++) send(t.conn, seg({ ack: l(1 + MSS) }), 10 + i);
    recv(t.conn, 13);
    expect(t.ev.retransmits).toEqual(['fast']);
    expect(t.ev.slowStartExits).toEqual(['loss']);
    recv(t.conn, 1000);
    expect(t.ev.retransmits).toEqual(['fast', 'rto']);
    expect(t.ev.slowStartExits).toEqual(['loss']);
  });

  it('a connection whose data is all acknowledged in slow start reports nothing', () => {
    const t = established();
    writeAndSend(t, 5 * MSS);
    send(t.conn, seg({ ack: l(1 + 5 * MSS) }), 10);
    recv(t.conn, 10);
    expect(t.ev.slowStartExits).toEqual([]);
  });
});

describe('SACK-based loss recovery (RFC 6675)', () => {
  const SACK: FixtureOpts = { syn: { sackPermitted: true }, cfg: { sack: true } };

  function tenOut(): { t: T; data: Buffer } {
    const t = established(SACK);
    const { data, sent } = writeAndSend(t, 10 * MSS);
    expect(sent).toHaveLength(10);
    return { t, data };
  }
  const at = (k: number): number => l(1 + k * MSS);

  it('RFC 6675 §5: three SACKed segments above SND.UNA (IsLost) start recovery with the first hole', () => {
    const { t, data } = tenOut();
    send(t.conn, seg({ sack: [[at(1), at(4)]] }), 10);
    expect(recv(t.conn, 10)[0]).toEqual(dataSeg(data, 0, MSS));
    expect(t.ev.retransmits[0]).toBe('fast');
    expect(t.conn.snd.recovery).toBe(2);
  });

  it('RFC 6675 §4 NextSeg: the retransmission goes to the lost hole, not to SACKed data', () => {
    const { t, data } = tenOut();
    send(t.conn, seg({ ack: at(2), sack: [[at(3), at(7)]] }), 10);
    const sent = recv(t.conn, 10);
    expect(sent[0]).toEqual(dataSeg(data, 2 * MSS, 3 * MSS));
    expect(sent.some((s) => s.seq === at(3) || s.seq === at(4))).toBe(false);
  });

  it('RFC 6675 §5: holes are retransmitted once each as pipe allows, lowest first', () => {
    const { t, data } = tenOut();
    send(t.conn, seg({ sack: [[at(1), at(2)], [at(3), at(6)]] }), 10);
    const first = recv(t.conn, 10);
    expect(first[0]).toEqual(dataSeg(data, 0, MSS));
    send(t.conn, seg({ sack: [[at(1), at(2)], [at(3), at(8)]] }), 20);
    const second = recv(t.conn, 20);
    expect(second.map((s) => s.seq)).toContain(at(2));
    expect([...first, ...second].filter((s) => s.seq === at(0))).toHaveLength(1);
  });

  it('RFC 6675 §5 (A): an ACK at or beyond RecoveryPoint ends recovery', () => {
    const { t } = tenOut();
    send(t.conn, seg({ sack: [[at(1), at(4)]] }), 10);
    recv(t.conn, 10);
    send(t.conn, seg({ ack: at(10) }), 20);
    expect(t.conn.snd.recovery).toBe(0);
    expect(t.conn.snd.sb.sackedBytes).toBe(0);
  });
});

describe('idle restart (RFC 5681 §4.1)', () => {
  it('RFC 5681 §4.1: after idling longer than RTO the congestion window restarts from IW', () => {
    const t = established();
    for (let i = 0; i < 4; i++) {
      writeAndSend(t, 14_600, i * 10, i);
      send(t.conn, seg({ ack: l(1 + 14_600 * (i + 1)) }), i * 10 + 5);
    }
    expect(t.conn.snd.cc.cwnd).toBeGreaterThan(14_600);
    writeAndSend(t, 100, 5000, 9);
    expect(t.conn.snd.cc.cwnd).toBe(14_600);
  });

});

describe('dispatch and the device ring', () => {
  it('dispatch stops when emit returns false and resumes where it stopped', () => {
    const t = established();
    const data = bytes(3 * MSS);
    t.conn.write(data);
    const first = recv(t.conn, 0, 1);
    expect(first).toEqual([dataSeg(data, 0, MSS)]);
    expect(t.conn.pollAt()).toBe(0);
    expect(recv(t.conn, 0)).toEqual([dataSeg(data, MSS, 2 * MSS), dataSeg(data, 2 * MSS, 3 * MSS)]);
  });

  it('an RST refused by the device is emitted at the next dispatch', () => {
    const t = established();
    t.conn.abort('abort', 0);
    expect(recv(t.conn, 0, 0)).toEqual([]);
    expect(recv(t.conn, 0)).toEqual([out({ flags: RST | ACK, window: 0 })]);
  });

  it('the ACK carried with data acknowledges what was received (piggyback)', () => {
    const t = established();
    send(t.conn, seg({ payload: 'req' }), 0);
    t.conn.write(Buffer.from('resp'));
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(4), window: 65532, flags: ACK | PSH, payload: 'resp' })]);
  });
});

describe('SND.UNA back at ISS after 2^32 − 1 bytes acknowledged', () => {
  it('a duplicate ACK draws no RST, the next ACK no second handshake, and data goes out from SND.UNA', () => {
    // The general path (the fast path would take the advancing ACK).
    const t = established({ cfg: { headerPrediction: false } });
    const snd = t.conn.snd;
    // Stands in for 4 GiB sent and acknowledged: the sender's own ACK processing, 64 MiB of
    // payload at a time (written by reference, not sent), then SND.MAX where SND.NXT is.
    const big = Buffer.allocUnsafe(64 * 1024 * 1024);
    for (let i = 0; i < 64; i++) {
      snd.write(i < 63 ? big : big.subarray(0, big.length - 1));
      snd.ack(seg({ ack: (snd.una + snd.buf.length) >>> 0 }), 0, false, 0, 0);
    }
    snd.max = snd.nxt;
    expect(snd.una).toBe(l(0));
    // RFC 9293 §3.10.7.4: in ESTABLISHED an ACK at SND.UNA is a duplicate, not a SYN-RECEIVED
    // "unacceptable ACK" answered with <SEQ=SEG.ACK><CTL=RST>.
    expect(send(t.conn, seg({ ack: l(0) }), 1)).toBeNull();
    expect(recv(t.conn, 1)).toEqual([]);
    t.conn.write(Buffer.from('after the wrap'));
    expect(recv(t.conn, 1)).toEqual([out({ seq: l(0), flags: ACK | PSH, payload: 'after the wrap' })]);
    expect(send(t.conn, seg({ ack: l(14) }), 2)).toBeNull();
    expect(t.ev.handshakes).toEqual([]);
    expect(t.h.established).toBe(1);
    expect(snd.buf.length).toBe(0);
  });
});
