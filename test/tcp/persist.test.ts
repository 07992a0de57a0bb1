import { describe, expect, it } from 'vitest';
import { persistEndsOnAck, persistInterval, persistNeeded, persistTimeout } from '../../src/tcp/persist.js';
import { State } from '../../src/tcp/state.js';
import { ACK, FIN, PSH, RST, type T, bytes, established, l, out, recv, recvNothing, send, seg } from './helpers.js';

describe('the persist rules (RFC 9293 §3.8.6.1)', () => {
  it('runs the persist timer only when something waits and nothing is in flight (RFC 9293 §3.8.6.1)', () => {
    expect(persistNeeded(true, 0)).toBe(true);
    expect(persistNeeded(true, 1)).toBe(false);
    expect(persistNeeded(false, 0)).toBe(false);
  });

  it('doubles the interval from the RTO with each probe, up to maxRtoMs (RFC 1122 §4.2.2.17)', () => {
    expect([0, 1, 2, 3].map((b) => persistInterval(200, b, 1000))).toEqual([200, 400, 800, 1000]);
  });

  it('probes while something waits, gives up after maxRetries unanswered probes, idles when nothing waits', () => {
    expect(persistTimeout(true, 0, 3)).toBe('probe');
    expect(persistTimeout(true, 2, 3)).toBe('probe');
    expect(persistTimeout(true, 3, 3)).toBe('give_up');
    expect(persistTimeout(false, 3, 3)).toBe('idle');
  });

  it('ends on an ACK that opens a new non-zero window or leaves nothing to send, not on a repeated window', () => {
    expect(persistEndsOnAck(100, 0, true)).toBe(true);
    expect(persistEndsOnAck(100, 100, true)).toBe(false);
    expect(persistEndsOnAck(0, 0, true)).toBe(false);
    expect(persistEndsOnAck(0, 0, false)).toBe(true);
  });
});

describe('zero-window probing (RFC 9293 §3.8.6.1)', () => {
  function zeroWindowPeer(): { t: T; data: Buffer } {
    const t = established();
    send(t.conn, seg({ window: 0 }), 0);
    const data = bytes(100);
    t.conn.write(data);
    recvNothing(t.conn, 0);
    return { t, data };
  }

  it('sends nothing into a zero window and runs the persist timer (RFC 9293 §3.8.6.1)', () => {
    const { t } = zeroWindowPeer();
    expect(t.conn.pollAt()).toBe(200);
  });

  it('sends a one-octet probe when the persist timer fires, then backs off (RFC 9293 §3.8.6.1)', () => {
    const { t, data } = zeroWindowPeer();
    expect(recv(t.conn, 200)).toEqual([out({ payload: data.subarray(0, 1) })]);
    expect(t.ev.retransmits).toEqual(['probe']);
    expect(t.conn.pollAt()).toBe(600);
    send(t.conn, seg({ window: 0 }), 210);
    recvNothing(t.conn, 210);
    expect(recv(t.conn, 600)).toEqual([out({ payload: data.subarray(0, 1) })]);
    expect(t.conn.pollAt()).toBe(1400);
  });

  it('sends the data and stops the persist timer when the window opens (RFC 9293 §3.8.6.1)', () => {
    const { t, data } = zeroWindowPeer();
    recv(t.conn, 1000);
    send(t.conn, seg({ window: 65535 }), 1010);
    expect(recv(t.conn, 1010)).toEqual([out({ payload: data, flags: ACK | PSH })]);
    expect(t.conn.timers.kind).toBe(1);
  });

  it('treats a probe octet the peer accepts as acknowledged data (RFC 9293 §3.8.6.1)', () => {
    const { t, data } = zeroWindowPeer();
    recv(t.conn, 1000);
    send(t.conn, seg({ ack: l(2), window: 0 }), 1010);
    expect(t.conn.snd.una).toBe(l(2));
    expect(recv(t.conn, 3000)).toEqual([out({ seq: l(2), payload: data.subarray(1, 2) })]);
  });

  it('sends a FIN waiting on a zero window as the probe and ends persist once it is acknowledged (RFC 9293 §3.8.6.1)', () => {
    const t = established();
    send(t.conn, seg({ window: 0 }), 0);
    t.conn.close(0);
    recvNothing(t.conn, 0);
    expect(recv(t.conn, 200)).toEqual([out({ flags: FIN | ACK })]);
    send(t.conn, seg({ ack: l(2), window: 0 }), 210);
    expect(t.conn.state).toBe(State.FIN_WAIT_2);
    recvNothing(t.conn, 210);
    expect(t.conn.pollAt()).toBe(Infinity);
  });

  it("sends abort()'s RST at SND.UNA + SND.WND after a refused probe octet, inside the zero window (RFC 5961 §3.2)", () => {
    const { t } = zeroWindowPeer();
    recv(t.conn, 200); // the probe: SND.NXT = l(2), one octet beyond the window
    send(t.conn, seg({ window: 0 }), 210); // refused: the peer's RCV.NXT stays l(1)
    t.conn.abort('idle_timeout', 300);
    // <SEQ=l(2)> would be outside the peer's window and dropped: its socket would stay open.
    expect(recv(t.conn, 300)).toEqual([out({ seq: l(1), flags: RST | ACK, window: 0 })]);
  });

  it("sends abort()'s RST at SND.NXT with data in flight inside the window (RFC 9293 §3.10.5)", () => {
    const t = established();
    t.conn.write(bytes(100));
    recv(t.conn, 0);
    t.conn.abort('abort', 5);
    expect(recv(t.conn, 5)).toEqual([out({ seq: l(101), flags: RST | ACK, window: 0 })]);
  });

  it('ends the connection after cfg.maxRetries unanswered probes (retransmit_timeout)', () => {
    const { t } = zeroWindowPeer();
    const c = t.conn;
    let now = 0;
    for (let i = 0; i < 20 && c.state !== State.CLOSED; i++) {
      now = c.pollAt();
      recv(c, now);
    }
    expect(c.state).toBe(State.CLOSED);
    expect(c.closeReason).toBe('retransmit_timeout');
  });
});

