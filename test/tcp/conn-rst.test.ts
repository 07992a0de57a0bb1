import { describe, expect, it } from 'vitest';
import { rstForUnknown } from '../../src/tcp/conn.js';
import { OutSegment } from '../../src/wire/segment.js';
import { State } from '../../src/tcp/state.js';
import {
  ACK,
  FIN,
  PSH,
  RST,
  type T,
  closeWait,
  closing,
  established,
  finWait1,
  finWait2,
  l,
  lastAck,
  out,
  r,
  recv,
  recvNothing,
  send,
  seg,
  synSeg,
} from './helpers.js';

function expectReset(t: T, rcvNxt: number, from: string): void {
  expect(send(t.conn, seg({ seq: rcvNxt, flags: RST }), 9)).toBeNull();
  expect(t.conn.state).toBe(State.CLOSED);
  expect(t.conn.closeReason).toBe('reset_received');
  expect(t.ev.resets).toEqual([['received', 'peer']]);
  expect(t.ev.transitions).toEqual([[from, 'CLOSED']]);
  expect(t.ev.closes).toEqual(['reset_received']);
  expect(t.h.closed).toBe(1);
  recvNothing(t.conn, 9);
}

describe('RST in the synchronized states (RFC 9293 §3.10.7.4 second check, RFC 5961 §3.2)', () => {
  it('RFC 5961 §3.2: ESTABLISHED → CLOSED on RST with SEQ = RCV.NXT', () => {
    expectReset(established(), r(1), 'ESTABLISHED');
  });

  it('RFC 5961 §3.2: FIN_WAIT_1 → CLOSED on RST with SEQ = RCV.NXT', () => {
    expectReset(finWait1(), r(1), 'FIN_WAIT_1');
  });

  it('RFC 5961 §3.2: FIN_WAIT_2 → CLOSED on RST with SEQ = RCV.NXT', () => {
    expectReset(finWait2(), r(1), 'FIN_WAIT_2');
  });

  it('RFC 5961 §3.2: CLOSE_WAIT → CLOSED on RST with SEQ = RCV.NXT', () => {
    expectReset(closeWait(), r(2), 'CLOSE_WAIT');
  });

  it('RFC 9293 §3.10.7.4: CLOSING → CLOSED on RST with SEQ = RCV.NXT', () => {
    expectReset(closing(), r(2), 'CLOSING');
  });

  it('RFC 9293 §3.10.7.4: LAST_ACK → CLOSED on RST with SEQ = RCV.NXT', () => {
    expectReset(lastAck(), r(2), 'LAST_ACK');
  });

  it('RFC 9293 §3.10.7.4: in-window RST with wrong seq gets a challenge ACK (RFC 5961 §3.2)', () => {
    const t = established();
    expect(send(t.conn, seg({ seq: r(100), flags: RST }))).toBe('rst_invalid');
    expect(t.conn.state).toBe(State.ESTABLISHED);
    expect(recv(t.conn, 0)).toEqual([out()]);
  });

  it('RFC 5961 §3.2: an RST outside the window is dropped silently', () => {
    const t = established();
    expect(send(t.conn, seg({ seq: r(100_000), flags: RST }))).toBe('rst_invalid');
    expect(send(t.conn, seg({ seq: r(0), flags: RST }))).toBe('rst_invalid');
    recvNothing(t.conn, 0);
    expect(t.conn.state).toBe(State.ESTABLISHED);
  });

  it('RFC 5961 §7: challenge ACKs are limited to cfg.challengeAckLimitPerSec per second', () => {
    const t = established({ cfg: { challengeAckLimitPerSec: 2 } });
    expect(send(t.conn, seg({ seq: r(10), flags: RST }), 100)).toBe('rst_invalid');
    expect(send(t.conn, seg({ seq: r(11), flags: RST }), 200)).toBe('rst_invalid');
    expect(send(t.conn, seg({ seq: r(12), flags: RST }), 300)).toBe('challenge_ack_limit');
    expect(recv(t.conn, 300)).toEqual([out()]);
    expect(send(t.conn, seg({ seq: r(13), flags: RST }), 1100)).toBe('rst_invalid');
    expect(recv(t.conn, 1100)).toEqual([out()]);
    expect(t.ev.drops).toEqual(['rst_invalid', 'rst_invalid', 'challenge_ack_limit', 'rst_invalid']);
  });
});

describe('SYN in a synchronized state (RFC 5961 §4)', () => {
  it('RFC 5961 §4: a SYN in ESTABLISHED (in window) gets a challenge ACK and changes nothing', () => {
    const t = established();
    expect(send(t.conn, synSeg({ seq: r(1) }))).toBe('syn_in_window');
    expect(t.conn.state).toBe(State.ESTABLISHED);
    expect(recv(t.conn, 0)).toEqual([out()]);
  });

  it('RFC 5961 §4: a SYN outside the window in ESTABLISHED gets an ACK too (not a reset)', () => {
    const t = established();
    send(t.conn, synSeg({ seq: r(1_000_000) }));
    expect(t.conn.state).toBe(State.ESTABLISHED);
    expect(recv(t.conn, 0)).toEqual([out()]);
  });

  it('RFC 5961 §4: a SYN in CLOSE_WAIT gets a challenge ACK', () => {
    const t = closeWait();
    send(t.conn, synSeg({ seq: r(2) }));
    expect(t.conn.state).toBe(State.CLOSE_WAIT);
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(2), window: 65534 })]);
  });
});

describe('ACK acceptability (RFC 9293 §3.10.7.4 fifth check, RFC 5961 §5.2)', () => {
  it('RFC 9293 §3.10.7.4: an ACK for data not yet sent (> SND.NXT) is answered with an ACK and dropped', () => {
    const t = established();
    expect(send(t.conn, seg({ ack: l(50), payload: 'x' }))).toBe('bad_ack');
    expect(t.h.chunks).toEqual([]);
    expect(recv(t.conn, 0)).toEqual([out()]);
  });

  it('RFC 5961 §5.2: an ACK below SND.UNA − MAX.SND.WND is answered with a challenge ACK and dropped', () => {
    const t = established();
    expect(send(t.conn, seg({ ack: l(-70_000), payload: 'x' }))).toBe('bad_ack');
    expect(t.h.chunks).toEqual([]);
    expect(recv(t.conn, 0)).toEqual([out()]);
  });

  it('RFC 9293 §3.10.7.4: an old but acceptable ACK (< SND.UNA) is ignored and the text still processed', () => {
    const t = established();
    t.conn.write(Buffer.from('abc'));
    recv(t.conn, 0);
    send(t.conn, seg({ ack: l(4) }));
    expect(send(t.conn, seg({ ack: l(2), payload: 'yo' }))).toBeNull();
    expect(t.h.received().toString()).toBe('yo');
    expect(t.conn.snd.una).toBe(l(4));
  });

  it('RFC 9293 §3.10.7.4: a segment without the ACK bit is dropped', () => {
    const t = established();
    expect(send(t.conn, seg({ flags: PSH, payload: 'x' }))).toBe('bad_ack');
    expect(t.h.chunks).toEqual([]);
  });
});

describe('RFC 9293 §3.10.7.1: resets for segments of no connection (rstForUnknown)', () => {
  it('RFC 9293 §3.10.7.1: with ACK set, <SEQ=SEG.ACK><CTL=RST>', () => {
    const o = new OutSegment();
    expect(rstForUnknown(seg({ seq: 5, ack: 0xfffffff0, flags: ACK, payload: 'zz' }), o)).toBe(true);
    expect([o.seq, o.ack, o.flags, o.window]).toEqual([0xfffffff0, 0, RST, 0]);
  });

  it('RFC 9293 §3.10.7.1: without ACK, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (SYN and FIN count)', () => {
    const o = new OutSegment();
    expect(rstForUnknown(synSeg({ seq: 0xffffffff }), o)).toBe(true);
    expect([o.seq, o.ack, o.flags]).toEqual([0, 0, RST | ACK]);
    expect(rstForUnknown(seg({ seq: 100, flags: FIN, payload: 'abc' }), o)).toBe(true);
    expect([o.seq, o.ack, o.flags]).toEqual([0, 104, RST | ACK]);
  });

  it('RFC 9293 §3.10.7.1: an RST is never answered with an RST', () => {
    const o = new OutSegment();
    expect(rstForUnknown(seg({ flags: RST | ACK }), o)).toBe(false);
    expect(rstForUnknown(seg({ flags: RST }), o)).toBe(false);
  });
});
