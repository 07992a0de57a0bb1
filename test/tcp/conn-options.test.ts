import { describe, expect, it } from 'vitest';
import { defaultTcpConfig, wscaleFor } from '../../src/tcp/defaults.js';
import {
  ACK,
  LOCAL_SEQ,
  PSH,
  REMOTE_SEQ,
  SYN,
  bytes,
  established,
  l,
  newConn,
  out,
  r,
  recv,
  recvNothing,
  send,
  seg,
  synSeg,
} from './helpers.js';

describe('window scaling (RFC 7323 §2)', () => {
  // 200000-byte buffer: our shift is 2 (65535·4 ≥ 200000).
  const BIG = { rcvBufBytes: 200_000 };

  it('RFC 7323 §2.2: our SYN-ACK carries WS only if the SYN did, and its window is not scaled', () => {
    const t = newConn(BIG);
    t.conn.accept(synSeg({ wscale: 7 }), LOCAL_SEQ, 0, 0);
    expect(recv(t.conn, 0)).toEqual([out({ seq: LOCAL_SEQ, flags: SYN | ACK, mss: 1460, wscale: 2, window: 65535 })]);
    const u = newConn(BIG);
    u.conn.accept(synSeg(), LOCAL_SEQ, 0, 0);
    expect(recv(u.conn, 0)[0]!.wscale).toBe(-1);
  });

  it('RFC 7323 §2.3: after the handshake our window field is right-shifted by our scale', () => {
    const t = established({ cfg: BIG, syn: { wscale: 7 } });
    send(t.conn, seg({ payload: bytes(1000) }));
    expect(recv(t.conn, 40)).toEqual([out({ ack: r(1001), window: 49_750 })]);
  });

  it("RFC 7323 §2.2: the window the SYN-ACK's unscaled field could not say rides on our next segment, not a packet of its own", () => {
    const t = established({ cfg: BIG, syn: { wscale: 7 } });
    send(t.conn, seg({ payload: bytes(1000) }));
    // The proxy passes the bytes on at once: the window could open from the SYN-ACK's 65535 to
    // the whole buffer, but the peer may still send 64 KB: no window update of its own...
    t.conn.consume(1000, 0);
    recvNothing(t.conn, 0);
    // ...it goes out with the answer.
    t.conn.write(Buffer.from('reply'));
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(1001), window: 50_000, flags: ACK | 0x08, payload: 'reply' })]);
  });

  it('RFC 9293 §3.8.6.3: with nothing to send, that window update goes out with the delayed ACK', () => {
    const t = established({ cfg: BIG, syn: { wscale: 7 } });
    send(t.conn, seg({ payload: bytes(1000) }));
    t.conn.consume(1000, 0);
    recvNothing(t.conn, 39);
    expect(recv(t.conn, 40)).toEqual([out({ ack: r(1001), window: 50_000 })]);
  });

  it('RFC 7323 §2.3: the peer window field is scaled by its shift (not in the SYN)', () => {
    const t = established({ cfg: BIG, syn: { wscale: 7, window: 1000 } });
    expect(t.conn.sendWindow).toBe(65535 * 128);
    send(t.conn, seg({ window: 100 }));
    expect(t.conn.sendWindow).toBe(12_800);
  });

  it('RFC 7323 §2.3: a shift above 14 is used as 14', () => {
    const t = established({ syn: { wscale: 20 } });
    send(t.conn, seg({ window: 1 }));
    expect(t.conn.sendWindow).toBe(16_384);
  });

  it('RFC 7323 §1.3: without window scaling the right edge is at most 65535 past RCV.NXT, whatever the buffer', () => {
    const t = established({ cfg: BIG });
    send(t.conn, seg({ payload: bytes(10) }));
    expect(recv(t.conn, 40)).toEqual([out({ ack: r(11), window: 65525 })]);
  });

  it('RFC 7323 §2.4: an unaligned advance does not pull the right edge left (rounded up within one unit)', () => {
    const t = established({ cfg: BIG, syn: { wscale: 7 } });
    let edge = -1;
    for (let i = 0; i < 6; i++) {
      send(t.conn, seg({ seq: r(1 + 333 * i), payload: bytes(333) }));
      const ack = recv(t.conn, 40 * (i + 1))[0]!;
      const right = (ack.ack + ack.window * 4) >>> 0;
      if (edge >= 0) expect((right - edge) | 0).toBeGreaterThanOrEqual(0);
      // Never more than one scale unit beyond the buffer: RCV.NXT + 200000 − unconsumed = r(200001).
      expect((right - r(200_001)) | 0).toBeLessThan(4);
      edge = right;
    }
  });

  it('RFC 7323 §2.2: the SYN-ACK window is not scaled on an active open', () => {
    const t = newConn(BIG);
    t.conn.connect(LOCAL_SEQ, 0);
    recv(t.conn, 0);
    send(t.conn, seg({ seq: REMOTE_SEQ, flags: SYN | ACK, wscale: 3, window: 5000 }), 0);
    expect(t.conn.sendWindow).toBe(5000);
    send(t.conn, seg({ window: 5000 }), 0);
    expect(t.conn.sendWindow).toBe(40_000);
  });
});

describe('defaultTcpConfig', () => {
  it('RFC 7323 §2.3: the window shift is the smallest that lets rcvBufBytes fit, at most 14', () => {
    expect([wscaleFor(65535), wscaleFor(65536), wscaleFor(262_144), wscaleFor(2 ** 40)]).toEqual([0, 1, 3, 14]);
    expect(defaultTcpConfig({ rcvBufBytes: 1 << 20 }).wscale).toBe(5);
    expect(defaultTcpConfig({ rcvBufBytes: 1 << 20, wscale: 7 }).wscale).toBe(7);
  });

  it('RFC 9293 §3.8.4 / §3.8.6.3: keepalive off and delayed ACK under 500 ms by default', () => {
    const cfg = defaultTcpConfig();
    expect(cfg.keepaliveIdleMs).toBe(0);
    expect(cfg.delayedAckMs).toBeLessThan(500);
    expect(cfg.mslMs * 2).toBe(60_000);
  });
});

describe('timestamps (RFC 7323 §3–§5)', () => {
  const TS = { cfg: { timestamps: true }, syn: { ts: [5000, 0] as [number, number] } };

  it('RFC 7323 §3.2: the SYN-ACK echoes the SYN TSval and sends ours (1 ms clock + tsOffset)', () => {
    const t = newConn({ timestamps: true }, 1000.7);
    t.conn.accept(synSeg({ ts: [5000, 0] }), LOCAL_SEQ, 1000, 1000.7, 0xffffff00);
    expect(recv(t.conn, 1000.7)[0]!.ts).toEqual([(1000 + 0xffffff00) >>> 0, 5000]);
  });

  it('RFC 7323 §3.2: no timestamps if the SYN had none', () => {
    const t = newConn({ timestamps: true });
    t.conn.accept(synSeg(), LOCAL_SEQ, 0, 0);
    expect(recv(t.conn, 0)[0]!.ts).toBeNull();
    expect(t.conn.tsEnabled).toBe(false);
  });

  it('RFC 9293 §3.7.1: with timestamps the effective MSS leaves room for the option (12 bytes)', () => {
    const t = established(TS);
    expect(t.conn.mss).toBe(1448);
  });

  it('RFC 7323 §3.2: every segment carries TSopt with TSecr = TS.Recent', () => {
    const t = established(TS);
    t.conn.write(Buffer.from('x'));
    expect(recv(t.conn, 7)).toEqual([out({ flags: ACK | PSH, payload: 'x', ts: [7, 5001] })]);
  });

  it('RFC 7323 §4.3: TS.Recent takes the TSval of an in-order segment', () => {
    const t = established(TS);
    send(t.conn, seg({ payload: 'a', ts: [6000, 0] }));
    expect(recv(t.conn, 40)[0]!.ts).toEqual([40, 6000]);
  });

  it('RFC 7323 §4.3: with delayed ACKs TS.Recent is the TSval of the earliest unacknowledged segment', () => {
    const t = established(TS);
    send(t.conn, seg({ payload: 'a', ts: [6000, 0] }));
    send(t.conn, seg({ seq: r(2), payload: 'b', ts: [6001, 0] }));
    expect(recv(t.conn, 40)[0]!.ts).toEqual([40, 6000]);
  });

  it('RFC 7323 §4.3: an out-of-order segment (SEG.SEQ > Last.ACK.sent) does not update TS.Recent', () => {
    const t = established(TS);
    send(t.conn, seg({ seq: r(50), payload: 'z', ts: [7000, 0] }));
    expect(recv(t.conn, 0)[0]!.ts).toEqual([0, 5001]);
  });

  it('RFC 7323 §3.2: a non-RST segment without TSopt is dropped once timestamps are negotiated', () => {
    const t = established(TS);
    expect(send(t.conn, seg({ payload: 'x' }))).toBe('malformed');
    expect(t.h.chunks).toEqual([]);
  });

  it('RFC 7323 §4.1 (RTTM): the RTT comes from TSecr, even for a retransmitted segment', () => {
    const t = established(TS);
    t.conn.write(Buffer.from('x'));
    recv(t.conn, 100);
    const rtx = recv(t.conn, 300);
    expect(rtx).toHaveLength(1);
    t.ev.clear();
    // The ACK echoes the retransmission's TSval (300): the sample is 350 − 300 = 50.
    send(t.conn, seg({ ack: l(2), ts: [5002, 300] }), 350);
    expect(t.ev.rtts).toHaveLength(1);
    expect(t.conn.snd.rtt.srtt).toBeCloseTo((7 / 8) * 0 + (1 / 8) * 50, 5);
  });

  it('RFC 7323 §4: a TSecr of 0 is no echo: the RTT comes from the timed segment instead (50, not 150)', () => {
    const t = established(TS);
    t.conn.write(Buffer.from('x'));
    recv(t.conn, 100);
    t.ev.clear();
    send(t.conn, seg({ ack: l(2), ts: [5002, 0] }), 150);
    expect(t.ev.rtts).toEqual([50 / 8]);
  });
});

describe('SACK-permitted (RFC 2018 §2)', () => {
  it('RFC 2018 §2: SACK-permitted in the SYN-ACK only if the SYN offered it and cfg.sack is on', () => {
    const a = newConn({ sack: true });
    a.conn.accept(synSeg({ sackPermitted: true }), LOCAL_SEQ, 0, 0);
    expect(recv(a.conn, 0)[0]!.sackPermitted).toBe(true);
    const b = newConn({ sack: false });
    b.conn.accept(synSeg({ sackPermitted: true }), LOCAL_SEQ, 0, 0);
    expect(recv(b.conn, 0)[0]!.sackPermitted).toBe(false);
    const c = newConn({ sack: true });
    c.conn.accept(synSeg(), LOCAL_SEQ, 0, 0);
    expect(recv(c.conn, 0)[0]!.sackPermitted).toBe(false);
  });

  it('RFC 2018 §2: our SYN offers SACK-permitted and timestamps per cfg on an active open', () => {
    const t = newConn({ sack: true, timestamps: true });
    t.conn.connect(LOCAL_SEQ, 3);
    expect(recv(t.conn, 3)).toEqual([
      out({ seq: LOCAL_SEQ, ack: 0, flags: SYN, mss: 1460, wscale: 0, sackPermitted: true, ts: [3, 0] }),
    ]);
  });
});
