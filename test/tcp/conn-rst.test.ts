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

});

describe('ACK acceptability (RFC 9293 §3.10.7.4 fifth check; the challenges are in challenge-ack.test.ts)', () => {
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
