import { describe, expect, it } from 'vitest';
import { State } from '../../src/tcp/state.js';
import {
  ACK,
  FIN,
  type FixtureOpts,
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

/** 4000-byte receive buffer, 1000-byte MSS: windows small enough to fill by hand. */
const SMALL: FixtureOpts = { cfg: { rcvBufBytes: 4000, mss: 1000 } };

/** Fill the whole 4000-byte window (4 × 1000 bytes) without consuming; drain the ACKs. */
function zeroWindow(): T {
  const t = established(SMALL);
  for (let i = 0; i < 4; i++) expect(send(t.conn, seg({ seq: r(1 + 1000 * i), payload: bytes(1000, i) }))).toBeNull();
  expect(recv(t.conn, 0)).toEqual([out({ ack: r(4001), window: 0 })]);
  expect(t.conn.receiveWindow).toBe(0);
  return t;
}

describe('segment acceptability (RFC 9293 §3.10.7.4, the four cases)', () => {
  it('RFC 9293 §3.10.7.4 case 1 (SEG.LEN = 0, RCV.WND = 0): acceptable only if SEG.SEQ = RCV.NXT', () => {
    const t = zeroWindow();
    expect(send(t.conn, seg({ seq: r(4001) }))).toBeNull();
    recvNothing(t.conn, 0);
    expect(send(t.conn, seg({ seq: r(4002) }))).toBe('out_of_window');
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(4001), window: 0 })]);
  });

  it('RFC 9293 §3.10.7.4 case 2 (SEG.LEN = 0, RCV.WND > 0): RCV.NXT ≤ SEG.SEQ < RCV.NXT + RCV.WND', () => {
    const t = established(SMALL);
    expect(send(t.conn, seg({ seq: r(4000) }))).toBeNull();
    expect(send(t.conn, seg({ seq: r(4001) }))).toBe('out_of_window');
    expect(send(t.conn, seg({ seq: r(0) }))).toBe('out_of_window');
    expect(recv(t.conn, 0)).toEqual([out({ window: 4000 })]);
  });

  it('RFC 9293 §3.10.7.4 case 3 (SEG.LEN > 0, RCV.WND = 0): not acceptable; an ACK is sent', () => {
    const t = zeroWindow();
    expect(send(t.conn, seg({ seq: r(4002), payload: 'x' }))).toBe('out_of_window');
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(4001), window: 0 })]);
    expect(t.conn.bytesIn).toBe(4000);
  });

  it('RFC 9293 §3.10.7.4: a zero-window probe at RCV.NXT has its ACK processed and is answered with an ACK', () => {
    const t = zeroWindow();
    t.conn.write(Buffer.from('q'));
    recv(t.conn, 0);
    expect(send(t.conn, seg({ seq: r(4001), ack: l(2), payload: 'P' }))).toBeNull();
    expect(t.conn.snd.una).toBe(l(2));
    expect(t.conn.bytesIn).toBe(4000);
    expect(recv(t.conn, 0)).toEqual([out({ seq: l(2), ack: r(4001), window: 0 })]);
  });

  it('RFC 9293 §3.10.7.4 case 4 (SEG.LEN > 0, RCV.WND > 0): acceptable if the first or the last byte is in the window', () => {
    const t = established(SMALL);
    // Starts before RCV.NXT, ends inside: acceptable.
    expect(send(t.conn, seg({ seq: r(-4), payload: 'xxxxxabc' }))).toBeNull();
    expect(t.h.received().toString()).toBe('abc');
    // Starts at the right edge: not acceptable.
    expect(send(t.conn, seg({ seq: r(4001), payload: 'z' }))).toBe('out_of_window');
    // Entirely before RCV.NXT: not acceptable, ACKed.
    expect(send(t.conn, seg({ seq: r(-10), payload: 'old' }))).toBe('out_of_window');
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(4), window: 3997 })]);
  });
});

describe('trimming (RFC 9293 §3.10.7.4)', () => {
  it('RFC 9293 §3.10.7.4: duplicate bytes at the front are trimmed; only new bytes are delivered', () => {
    const t = established();
    send(t.conn, seg({ payload: 'abcd' }));
    send(t.conn, seg({ payload: 'abcdefgh' }));
    expect(t.h.chunks.map((b) => b.toString())).toEqual(['abcd', 'efgh']);
    expect(t.conn.bytesIn).toBe(8);
  });

  it('RFC 9293 §3.10.7.4: bytes beyond the right edge of the window are trimmed (and a FIN after them dropped)', () => {
    const t = established(SMALL);
    expect(send(t.conn, seg({ flags: FIN | ACK, payload: bytes(4500) }))).toBeNull();
    expect(t.conn.bytesIn).toBe(4000);
    expect(t.h.received()).toEqual(bytes(4500).subarray(0, 4000));
    expect(t.conn.state).toBe(State.ESTABLISHED);
  });

  it('RFC 9293 §3.10.7.4: a FIN exactly at the right edge after in-window data is accepted', () => {
    const t = established(SMALL);
    send(t.conn, seg({ flags: FIN | ACK, payload: bytes(4000) }));
    expect(t.conn.state).toBe(State.CLOSE_WAIT);
  });

  it('RFC 9293 §3.10.7.4: a fully duplicate segment is answered at once with an ACK', () => {
    const t = established();
    send(t.conn, seg({ payload: 'abcd' }));
    recv(t.conn, 40);
    expect(send(t.conn, seg({ payload: 'abcd' }), 50)).toBe('out_of_window');
    expect(recv(t.conn, 50)).toEqual([out({ ack: r(5), window: 65531 })]);
  });
});

describe('reassembly of out-of-order segments', () => {
  it('out-of-order data is held and delivered when the hole is filled', () => {
    const t = established();
    send(t.conn, seg({ seq: r(4), payload: 'def' }));
    send(t.conn, seg({ seq: r(10), payload: 'jkl' }));
    expect(t.h.chunks).toEqual([]);
    send(t.conn, seg({ seq: r(7), payload: 'ghi' }));
    expect(t.h.chunks).toEqual([]);
    send(t.conn, seg({ payload: 'abc' }));
    expect(t.h.received().toString()).toBe('abcdefghijkl');
    expect(t.h.chunks).toHaveLength(1);
    expect(t.conn.bytesIn).toBe(12);
    expect(t.conn.rcv.oooBytes).toBe(0);
  });

  it('overlapping out-of-order segments are merged without duplicating bytes', () => {
    const t = established();
    send(t.conn, seg({ seq: r(5), payload: 'efgh' }));
    send(t.conn, seg({ seq: r(3), payload: 'cdefghij' }));
    expect(t.conn.rcv.oooBytes).toBe(8);
    send(t.conn, seg({ payload: 'ab' }));
    expect(t.h.received().toString()).toBe('abcdefghij');
  });

  it('RFC 5681 §4.2: each out-of-order segment is ACKed at once with a duplicate ACK', () => {
    const t = established();
    send(t.conn, seg({ seq: r(101), payload: bytes(100) }));
    send(t.conn, seg({ seq: r(201), payload: bytes(100) }));
    send(t.conn, seg({ seq: r(301), payload: bytes(100) }));
    expect(recv(t.conn, 0)).toEqual([out(), out(), out()]);
  });

  it('RFC 5681 §4.2: a segment that fills the hole is ACKed at once, covering the joined data', () => {
    const t = established();
    send(t.conn, seg({ seq: r(101), payload: bytes(100) }));
    recv(t.conn, 0);
    send(t.conn, seg({ payload: bytes(100) }));
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(201), window: 65335 })]);
  });

  it('RFC 5681 §4.2: a segment that fills only part of the hole is ACKed at once', () => {
    const t = established();
    send(t.conn, seg({ seq: r(201), payload: bytes(100) }));
    recv(t.conn, 0);
    send(t.conn, seg({ payload: bytes(100) }));
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(101), window: 65435 })]);
  });

  it('out-of-order data beyond the advertised window is never buffered', () => {
    const t = established(SMALL);
    expect(send(t.conn, seg({ seq: r(3001), payload: bytes(2000) }))).toBeNull();
    expect(t.conn.rcv.oooBytes).toBe(1000);
    expect(send(t.conn, seg({ seq: r(4001), payload: bytes(10) }))).toBe('out_of_window');
    expect(t.conn.receiveBuffered).toBeLessThanOrEqual(4000);
  });

  it('the reassembly ring is released once every hole is filled', () => {
    const t = established();
    send(t.conn, seg({ seq: r(11), payload: 'x' }));
    expect(t.conn.rcv.ringAllocated).toBe(true);
    send(t.conn, seg({ payload: '0123456789' }));
    expect(t.conn.rcv.ringAllocated).toBe(false);
  });
});

describe('the receive window (RFC 9293 §3.8.6.2.2)', () => {
  it('the advertised window is the free buffer: delivered-but-unconsumed bytes occupy it', () => {
    const t = established(SMALL);
    send(t.conn, seg({ payload: bytes(1500) }));
    expect(recv(t.conn, 40)).toEqual([out({ ack: r(1501), window: 2500 })]);
  });

  it('RFC 9293 §3.8.6.2.2: the right edge never moves left while data arrives unconsumed', () => {
    const t = established(SMALL);
    let edge = r(4001);
    for (let i = 0; i < 8; i++) {
      send(t.conn, seg({ seq: r(1 + 500 * i), payload: bytes(500) }));
      for (const o of recv(t.conn, 100 * (i + 1))) {
        expect(((o.ack + o.window) >>> 0) - edge).toBe(0);
        edge = (o.ack + o.window) >>> 0;
      }
    }
  });

  it('RFC 9293 §3.8.6.2.2: consume() that reopens the window by ≥ min(MSS, buffer/2) sends a window update', () => {
    const t = zeroWindow();
    t.conn.consume(999, 0);
    recvNothing(t.conn, 0);
    t.conn.consume(1, 0);
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(4001), window: 1000 })]);
  });

  it('consume() says whether it made a segment due: only a window update worth sending needs a dispatch', () => {
    const t = zeroWindow();
    expect(t.conn.consume(999, 0)).toBe(false);
    expect(t.conn.pollAt()).toBeGreaterThan(0);
    expect(t.conn.consume(1, 0)).toBe(true);
    expect(t.conn.pollAt()).toBe(0);
    expect(t.conn.consume(0, 0)).toBe(false);
  });

  it('RFC 9293 §3.8.6.2.2: receiver SWS avoidance holds the right edge until it can move by min(MSS, buffer/2)', () => {
    const t = zeroWindow();
    t.conn.consume(500, 0);
    send(t.conn, seg({ seq: r(4001) }));
    recvNothing(t.conn, 0);
    t.conn.write(Buffer.from('d'));
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(4001), window: 0, flags: ACK | 0x08, payload: 'd' })]);
  });

  it('a window update from zero lets the peer fill the new space', () => {
    const t = zeroWindow();
    t.conn.consume(4000, 0);
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(4001), window: 4000 })]);
    expect(send(t.conn, seg({ seq: r(4001), payload: bytes(4000) }))).toBeNull();
    expect(t.conn.bytesIn).toBe(8000);
  });

  it('bounded memory: delivered-but-unconsumed plus out-of-order bytes never exceed the buffer', () => {
    const t = established(SMALL);
    send(t.conn, seg({ seq: r(2001), payload: bytes(1000) }));
    send(t.conn, seg({ seq: r(1), payload: bytes(1500) }));
    send(t.conn, seg({ seq: r(3001), payload: bytes(5000) }));
    expect(t.conn.receiveBuffered).toBeLessThanOrEqual(4000);
    expect(t.conn.bytesIn + t.conn.rcv.oooBytes).toBe(1500 + 2000);
  });

  it('consume() after CLOSE_WAIT sends no window update (the peer sends nothing more)', () => {
    const t = established(SMALL);
    send(t.conn, seg({ flags: FIN | ACK, payload: bytes(4000) }));
    recv(t.conn, 0);
    t.conn.consume(4000, 0);
    recvNothing(t.conn, 0);
  });
});

describe('SACK blocks in our ACKs (RFC 2018 §4)', () => {
  const SACK: FixtureOpts = { syn: { sackPermitted: true }, cfg: { sack: true } };

  it('RFC 2018 §4: a duplicate ACK carries the out-of-order range as a SACK block', () => {
    const t = established(SACK);
    send(t.conn, seg({ seq: r(101), payload: bytes(100) }));
    expect(recv(t.conn, 0)).toEqual([out({ sack: [[r(101), r(201)]] })]);
  });

  it('RFC 2018 §4: the first block is the one holding the most recently received segment', () => {
    const t = established(SACK);
    send(t.conn, seg({ seq: r(101), payload: bytes(100) }));
    send(t.conn, seg({ seq: r(301), payload: bytes(100) }));
    send(t.conn, seg({ seq: r(501), payload: bytes(100) }));
    send(t.conn, seg({ seq: r(201), payload: bytes(50) }));
    const acks = recv(t.conn, 0);
    expect(acks.at(-1)!.sack).toEqual([
      [r(101), r(251)],
      [r(501), r(601)],
      [r(301), r(401)],
    ]);
  });

  it('RFC 2018 §4: no SACK option when nothing is held out of order', () => {
    const t = established(SACK);
    send(t.conn, seg({ payload: bytes(10) }));
    expect(recv(t.conn, 40)[0]!.sack).toEqual([]);
  });

  it('RFC 2018 §3: at most 3 blocks next to timestamps', () => {
    const t = established({ syn: { sackPermitted: true, ts: [1000, 0] }, cfg: { timestamps: true, sack: true } });
    for (let i = 0; i < 5; i++) send(t.conn, seg({ seq: r(101 + 200 * i), payload: bytes(100), ts: [1001, 0] }));
    const acks = recv(t.conn, 0);
    expect(acks.at(-1)!.sack).toHaveLength(3);
    expect(acks.at(-1)!.sack[0]).toEqual([r(901), r(1001)]);
  });
});

describe('delivery to the owner', () => {
  it('onData gets an owned copy: changing the segment buffer afterwards does not change it', () => {
    const t = established();
    const p = Buffer.from('hello');
    send(t.conn, seg({ payload: p }));
    p.fill(0);
    expect(t.h.received().toString()).toBe('hello');
  });

  it('an abort() from inside onData stops processing of the segment (no FIN, no crash)', () => {
    const t = established();
    t.h.onDataHook = (c) => c.abort('abort', 0);
    expect(send(t.conn, seg({ flags: FIN | ACK, payload: 'x' }))).toBeNull();
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.h.fins).toBe(0);
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(3), flags: 0x04 | ACK, window: 0 })]);
  });

  it('close() from inside onFin sends our FIN with the ACK of theirs', () => {
    const t = established();
    t.h.onFinHook = (c) => c.close(0);
    send(t.conn, seg({ flags: FIN | ACK }));
    expect(t.conn.state).toBe(State.LAST_ACK);
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(2), flags: FIN | ACK, window: 65534 })]);
    expect(l(1)).toBe(t.conn.snd.una);
  });
});
