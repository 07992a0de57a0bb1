import { describe, expect, it } from 'vitest';
import { ACK_NOW, delayedAckAt } from '../../src/tcp/delayed-ack.js';
import { State } from '../../src/tcp/state.js';
import { ACK, FIN, bytes, established, finWait2, out, r, recv, recvNothing, send, seg } from './helpers.js';

const MSS = 1000;

describe('delayedAckAt (RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2, RFC 5681 §4.2)', () => {
  it('delays the ACK of less than two full-sized segments by delayedAckMs (RFC 9293 §3.8.6.3)', () => {
    expect(delayedAckAt(1999, Infinity, MSS, Infinity, 100, 40)).toBe(140);
  });

  it('ACKs at once when two full-sized segments are unacknowledged (RFC 5681 §4.2)', () => {
    expect(delayedAckAt(2000, Infinity, MSS, 120, 100, 40)).toBe(ACK_NOW);
  });

  it('never pushes back a deadline already armed (RFC 1122 §4.2.3.2: less than 0.5 s from the first)', () => {
    expect(delayedAckAt(10, Infinity, MSS, 120, 150, 40)).toBe(120);
    expect(delayedAckAt(0, 5000, MSS, 120, 150, 40)).toBe(120);
  });

  it('sends a window update at once when the peer may send under two full segments (RFC 9293 §3.8.6.2.2)', () => {
    expect(delayedAckAt(0, 1999, MSS, Infinity, 100, 40)).toBe(ACK_NOW);
    expect(delayedAckAt(0, 2000, MSS, Infinity, 100, 40)).toBe(140);
  });
});

describe('delayed and immediate ACKs in a connection (RFC 9293 §3.8.6.3, RFC 5681 §4.2)', () => {
  it('ACKs a single in-order segment after cfg.delayedAckMs (RFC 9293 §3.8.6.3)', () => {
    const t = established();
    send(t.conn, seg({ payload: 'abc' }), 100);
    expect(t.conn.pollAt()).toBe(0);
    recvNothing(t.conn, 100);
    expect(t.conn.pollAt()).toBe(140);
    recvNothing(t.conn, 139);
    expect(recv(t.conn, 140)).toEqual([out({ ack: r(4), window: 65532 })]);
  });

  it('ACKs every second full-sized segment at once (RFC 5681 §4.2)', () => {
    const t = established();
    send(t.conn, seg({ payload: bytes(1460) }));
    recvNothing(t.conn, 0);
    send(t.conn, seg({ seq: r(1461), payload: bytes(1460) }));
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(2921), window: 65535 - 2920 })]);
  });

  it('keeps the first segment\'s deadline when a second small one arrives (RFC 1122 §4.2.3.2)', () => {
    const t = established();
    send(t.conn, seg({ payload: 'a' }), 100);
    recvNothing(t.conn, 100);
    send(t.conn, seg({ seq: r(2), payload: 'b' }), 130);
    recvNothing(t.conn, 130);
    expect(t.conn.pollAt()).toBe(140);
    expect(recv(t.conn, 140)).toEqual([out({ ack: r(3), window: 65533 })]);
  });

  it('piggybacks a delayed ACK on outgoing data', () => {
    const t = established();
    send(t.conn, seg({ payload: 'ping' }), 10);
    t.conn.write(Buffer.from('pong'));
    expect(recv(t.conn, 10)).toEqual([out({ ack: r(5), window: 65531, flags: ACK | 0x08, payload: 'pong' })]);
    recvNothing(t.conn, 60);
  });

  it('delays the ACK of a FIN received in ESTABLISHED like a data segment\'s (RFC 9293 §3.8.6.3)', () => {
    const t = established();
    send(t.conn, seg({ flags: FIN | ACK }), 100);
    expect(t.conn.state).toBe(State.CLOSE_WAIT);
    recvNothing(t.conn, 100);
    expect(t.conn.pollAt()).toBe(140);
  });

  it('acks a FIN received in FIN_WAIT_2 at once (our FIN is out: nothing to piggyback on)', () => {
    const t = finWait2();
    send(t.conn, seg({ flags: FIN | ACK }), 100);
    expect(t.conn.state).toBe(State.TIME_WAIT);
    expect(recv(t.conn, 100)).toHaveLength(1);
  });

  it('sends a window update at once when the peer has under two segments of room (RFC 9293 §3.8.6.2.2)', () => {
    const t = established({ cfg: { rcvBufBytes: 4000, mss: 1000 } });
    for (let i = 0; i < 4; i++) send(t.conn, seg({ seq: r(1 + 1000 * i), payload: bytes(1000, i) }));
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(4001), window: 0 })]);
    t.conn.consume(1000, 0);
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(4001), window: 1000 })]);
  });
});
