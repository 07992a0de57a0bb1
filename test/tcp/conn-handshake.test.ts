import { describe, expect, it } from 'vitest';
import { TcpConnError } from '../../src/tcp/conn.js';
import { State } from '../../src/tcp/state.js';
import {
  ACK,
  LOCAL_SEQ,
  REMOTE_SEQ,
  RST,
  SYN,
  established,
  l,
  newConn,
  out,
  r,
  recv,
  recvNothing,
  send,
  seg,
  synReceived,
  synSeg,
} from './helpers.js';

describe('passive open (RFC 9293 §3.5)', () => {
  it('RFC 9293 §3.5: accept() answers the SYN with <SEQ=ISS><ACK=IRS+1><CTL=SYN,ACK> and our MSS', () => {
    const t = newConn();
    t.conn.accept(synSeg(), LOCAL_SEQ, 0, 0);
    expect(recv(t.conn, 0)).toEqual([out({ seq: LOCAL_SEQ, ack: r(1), flags: SYN | ACK, mss: 1460 })]);
  });

  it('Figure 5: LISTEN → SYN_RECEIVED is reported, timed from the SYN arrival', () => {
    const t = newConn({}, 250);
    t.conn.accept(synSeg(), LOCAL_SEQ, 100, 250);
    expect(t.ev.transitions).toEqual([['LISTEN', 'SYN_RECEIVED']]);
    expect(t.ev.durations).toEqual([150]);
    expect(t.conn.createdAt).toBe(100);
  });

  it('Figure 5: SYN_RECEIVED → ESTABLISHED on an acceptable ACK; handshake ok timed from the SYN', () => {
    const t = newConn({}, 10);
    t.conn.accept(synSeg(), LOCAL_SEQ, 0, 10);
    recv(t.conn, 10);
    expect(send(t.conn, seg(), 35)).toBeNull();
    expect(t.conn.state).toBe(State.ESTABLISHED);
    expect(t.ev.transitions).toEqual([
      ['LISTEN', 'SYN_RECEIVED'],
      ['SYN_RECEIVED', 'ESTABLISHED'],
    ]);
    expect(t.ev.handshakes).toEqual([['ok', 35]]);
    expect(t.h.established).toBe(1);
    recvNothing(t.conn, 35);
  });

  it('RFC 9293 §3.10.7.4: data on the final ACK of the handshake is delivered', () => {
    const t = synReceived();
    expect(send(t.conn, seg({ payload: 'early' }), 0)).toBeNull();
    expect(t.h.calls).toEqual(['established', 'data']);
    expect(t.h.received().toString()).toBe('early');
  });

  it('RFC 9293 §3.10.7.4: an ACK in SYN_RECEIVED that does not acknowledge our SYN gets <SEQ=SEG.ACK><CTL=RST>', () => {
    const t = synReceived();
    expect(send(t.conn, seg({ ack: l(5) }), 0)).toBe('bad_ack');
    expect(recv(t.conn, 0)).toEqual([out({ seq: l(5), ack: 0, flags: RST, window: 0 })]);
    expect(t.conn.state).toBe(State.SYN_RECEIVED);
    expect(t.ev.resets).toEqual([['sent', 'bad_ack']]);
  });

  it('RFC 9293 §3.10.7.4: a segment without ACK in SYN_RECEIVED is dropped', () => {
    const t = synReceived();
    expect(send(t.conn, seg({ flags: 0, payload: 'x' }), 0)).toBe('bad_ack');
    expect(t.conn.state).toBe(State.SYN_RECEIVED);
    expect(t.h.chunks).toEqual([]);
  });

  it('RFC 9293 §3.8.1: a retransmitted SYN in SYN_RECEIVED gets the SYN-ACK again', () => {
    const t = synReceived();
    expect(send(t.conn, synSeg(), 5)).toBeNull();
    expect(recv(t.conn, 5)).toEqual([out({ seq: LOCAL_SEQ, ack: r(1), flags: SYN | ACK, mss: 1460 })]);
  });

  it('RFC 9293 §3.10.7.4 / RFC 5961 §3.2: RST with SEQ = RCV.NXT in SYN_RECEIVED closes; handshake reset', () => {
    const t = synReceived();
    expect(send(t.conn, seg({ flags: RST, ack: 0 }), 7)).toBeNull();
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.conn.closeReason).toBe('reset_received');
    expect(t.ev.handshakes).toEqual([['reset', 7]]);
    expect(t.ev.transitions.at(-1)).toEqual(['SYN_RECEIVED', 'CLOSED']);
    expect(t.h.closed).toBe(1);
    recvNothing(t.conn, 7);
  });

  it('RFC 6298 §5.1/5.5: the SYN-ACK is retransmitted after the initial RTO, then with doubled RTO', () => {
    const t = synReceived();
    recvNothing(t.conn, 999);
    const synAck = out({ seq: LOCAL_SEQ, ack: r(1), flags: SYN | ACK, mss: 1460 });
    expect(recv(t.conn, 1000)).toEqual([synAck]);
    recvNothing(t.conn, 2999);
    expect(recv(t.conn, 3000)).toEqual([synAck]);
    expect(t.ev.retransmits).toEqual(['rto', 'rto']);
    expect(t.conn.retransmits).toBe(2);
  });

  it('cfg.maxSynAckRetries: after the last SYN-ACK retransmission times out the handshake fails with timeout → CLOSED', () => {
    const t = synReceived({ cfg: { maxSynAckRetries: 2 } });
    expect(recv(t.conn, 1000)).toHaveLength(1);
    expect(recv(t.conn, 3000)).toHaveLength(1);
    recvNothing(t.conn, 7000);
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.conn.closeReason).toBe('retransmit_timeout');
    expect(t.ev.handshakes).toEqual([['timeout', 7000]]);
    expect(t.ev.closes).toEqual(['retransmit_timeout']);
    expect(t.h.closed).toBe(1);
    expect(t.conn.pollAt()).toBe(Infinity);
  });

  it('RFC 6298 §5.7: after a retransmitted SYN-ACK and no RTT sample, RTO is 3 s once established', () => {
    const t = synReceived();
    recv(t.conn, 1000);
    send(t.conn, seg(), 1200);
    t.conn.write(Buffer.from('x'));
    expect(recv(t.conn, 1200)).toHaveLength(1);
    recvNothing(t.conn, 4199);
    expect(recv(t.conn, 4200)).toEqual([out({ payload: 'x', flags: ACK | 0x08 })]);
  });

  it('RFC 9293 §3.7.1: without an MSS option the send MSS is 536 (IPv4)', () => {
    const t = newConn();
    t.conn.accept(synSeg({ mss: -1 }), LOCAL_SEQ, 0, 0);
    expect(t.conn.mss).toBe(536);
  });

  it('RFC 9293 §3.7.1: without an MSS option the send MSS is 1220 on IPv6', () => {
    const t = newConn();
    t.conn.accept(synSeg({ mss: -1 }), LOCAL_SEQ, 0, 0, 0, 6);
    expect(t.conn.mss).toBe(1220);
  });

  it('RFC 9293 §3.7.1: on IPv6 we advertise cfg.mss − 20 (cfg.mss is computed for IPv4 headers)', () => {
    const t = newConn();
    t.conn.accept(synSeg({ mss: 9000 }), LOCAL_SEQ, 0, 0, 0, 6);
    expect(recv(t.conn, 0)[0]!.mss).toBe(1440);
    expect(t.conn.mss).toBe(1440);
  });

  it('RFC 9293 §3.7.1: the send MSS is the smaller of the peer\'s option and ours', () => {
    const t = newConn();
    t.conn.accept(synSeg({ mss: 9000 }), LOCAL_SEQ, 0, 0);
    expect(t.conn.mss).toBe(1460);
    const u = newConn();
    u.conn.accept(synSeg({ mss: 1000 }), LOCAL_SEQ, 0, 0);
    expect(u.conn.mss).toBe(1000);
  });

  it('SYN cookie replay: the final ACK may be processed before our SYN-ACK was ever dispatched', () => {
    const t = newConn();
    t.conn.accept(synSeg(), LOCAL_SEQ, 0, 0);
    expect(send(t.conn, seg(), 0)).toBeNull();
    expect(t.conn.state).toBe(State.ESTABLISHED);
    recvNothing(t.conn, 0);
  });

  it('accept() twice is a programming error with a stable code', () => {
    const t = synReceived();
    expect(() => t.conn.accept(synSeg(), LOCAL_SEQ, 0, 0)).toThrow(TcpConnError);
    try {
      t.conn.accept(synSeg(), LOCAL_SEQ, 0, 0);
    } catch (e) {
      expect((e as TcpConnError).code).toBe('ERR_TCP_BAD_STATE');
    }
  });
});

describe('active open (RFC 9293 §3.5, §3.10.7.3)', () => {
  function synSent() {
    const t = newConn();
    t.conn.connect(LOCAL_SEQ, 0);
    expect(recv(t.conn, 0)).toEqual([out({ seq: LOCAL_SEQ, ack: 0, flags: SYN, mss: 1460, wscale: 0 })]);
    return t;
  }

  it('Figure 5: CLOSED → SYN_SENT on connect(), the SYN offers MSS and window scale', () => {
    const t = synSent();
    expect(t.conn.state).toBe(State.SYN_SENT);
    expect(t.ev.transitions).toEqual([['CLOSED', 'SYN_SENT']]);
  });

  it('Figure 5: SYN_SENT → ESTABLISHED on SYN-ACK; the ACK goes out at once; onEstablished', () => {
    const t = synSent();
    expect(send(t.conn, seg({ seq: REMOTE_SEQ, flags: SYN | ACK, mss: 1200 }), 20)).toBeNull();
    expect(t.conn.state).toBe(State.ESTABLISHED);
    expect(t.h.established).toBe(1);
    expect(t.conn.mss).toBe(1200);
    expect(recv(t.conn, 20)).toEqual([out()]);
    expect(t.ev.transitions.at(-1)).toEqual(['SYN_SENT', 'ESTABLISHED']);
    expect(t.ev.rtts).toEqual([20]);
  });

  it('RFC 9293 §3.10.7.3: a SYN-ACK with an unacceptable ACK gets <SEQ=SEG.ACK><CTL=RST>', () => {
    const t = synSent();
    expect(send(t.conn, seg({ seq: REMOTE_SEQ, flags: SYN | ACK, ack: l(100) }), 0)).toBe('bad_ack');
    expect(recv(t.conn, 0)).toEqual([out({ seq: l(100), ack: 0, flags: RST, window: 0 })]);
    expect(t.conn.state).toBe(State.SYN_SENT);
  });

  it('RFC 9293 §3.10.7.3: RST with an acceptable ACK in SYN_SENT closes (connection reset)', () => {
    const t = synSent();
    expect(send(t.conn, seg({ flags: RST | ACK, seq: 0 }), 0)).toBeNull();
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.conn.closeReason).toBe('reset_received');
    expect(t.ev.transitions.at(-1)).toEqual(['SYN_SENT', 'CLOSED']);
  });

  it('RFC 9293 §3.10.7.3: RST without ACK in SYN_SENT is dropped', () => {
    const t = synSent();
    expect(send(t.conn, seg({ flags: RST, seq: 0 }), 0)).toBe('rst_invalid');
    expect(t.conn.state).toBe(State.SYN_SENT);
  });

  it('Figure 5: SYN_SENT → SYN_RECEIVED on a bare SYN (simultaneous open), answered with SYN-ACK', () => {
    const t = synSent();
    expect(send(t.conn, synSeg(), 0)).toBeNull();
    expect(t.conn.state).toBe(State.SYN_RECEIVED);
    expect(recv(t.conn, 0)).toEqual([out({ seq: LOCAL_SEQ, ack: r(1), flags: SYN | ACK, mss: 1460 })]);
    expect(send(t.conn, seg({ seq: r(1), ack: l(1) }), 0)).toBeNull();
    expect(t.conn.state).toBe(State.ESTABLISHED);
    expect(t.ev.transitions).toEqual([
      ['CLOSED', 'SYN_SENT'],
      ['SYN_SENT', 'SYN_RECEIVED'],
      ['SYN_RECEIVED', 'ESTABLISHED'],
    ]);
  });

  it('RFC 6298 §5.5: the SYN is retransmitted with backoff; giving up closes with retransmit_timeout', () => {
    const t = newConn({ maxSynAckRetries: 1 });
    t.conn.connect(LOCAL_SEQ, 0);
    recv(t.conn, 0);
    expect(recv(t.conn, 1000)).toEqual([out({ seq: LOCAL_SEQ, ack: 0, flags: SYN, mss: 1460, wscale: 0 })]);
    recvNothing(t.conn, 3000);
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.conn.closeReason).toBe('retransmit_timeout');
  });

  it('Figure 5: SYN_SENT → CLOSED on close()', () => {
    const t = synSent();
    t.conn.close(5);
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.ev.transitions.at(-1)).toEqual(['SYN_SENT', 'CLOSED']);
    recvNothing(t.conn, 5);
  });

  it('RFC 9293 §3.10.7.3: data in the SYN-ACK is delivered after onEstablished', () => {
    const t = synSent();
    send(t.conn, seg({ seq: REMOTE_SEQ, flags: SYN | ACK, payload: 'hi' }), 0);
    expect(t.h.calls).toEqual(['established', 'data']);
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(3), window: 65533 })]);
  });
});

describe('established fixture sanity', () => {
  it('the established fixture leaves nothing to send and no timer but keepalive-free idle', () => {
    const t = established();
    expect(t.conn.pollAt()).toBe(Infinity);
  });
});
