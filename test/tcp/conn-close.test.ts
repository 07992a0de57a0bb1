import { describe, expect, it } from 'vitest';
import { TcpConnError } from '../../src/tcp/conn.js';
import { State } from '../../src/tcp/state.js';
import {
  ACK,
  FIN,
  LOCAL_SEQ,
  PSH,
  RST,
  closeWait,
  closing,
  established,
  finWait1,
  finWait2,
  l,
  lastAck,
  newConn,
  out,
  r,
  recv,
  recvNothing,
  send,
  seg,
  synReceived,
  synSeg,
  timeWait,
} from './helpers.js';

describe('we close first (RFC 9293 §3.6 Figure 12)', () => {
  it('Figure 5: ESTABLISHED → FIN_WAIT_1 on close(), FIN sent', () => {
    const t = established();
    t.conn.close(0);
    expect(t.conn.state).toBe(State.FIN_WAIT_1);
    expect(recv(t.conn, 0)).toEqual([out({ flags: FIN | ACK })]);
    expect(t.ev.transitions).toEqual([['ESTABLISHED', 'FIN_WAIT_1']]);
  });

  it('RFC 9293 §3.10.4: the FIN follows the queued data, piggybacked on the last segment', () => {
    const t = established();
    t.conn.write(Buffer.from('bye'));
    t.conn.close(0);
    expect(recv(t.conn, 0)).toEqual([out({ flags: FIN | PSH | ACK, payload: 'bye' })]);
  });

  it('Figure 5: FIN_WAIT_1 → FIN_WAIT_2 when our FIN is acknowledged', () => {
    const t = finWait1();
    expect(send(t.conn, seg({ ack: l(2) }))).toBeNull();
    expect(t.conn.state).toBe(State.FIN_WAIT_2);
    expect(t.ev.transitions).toEqual([['FIN_WAIT_1', 'FIN_WAIT_2']]);
  });

  it('Figure 5: FIN_WAIT_2 → TIME_WAIT on the peer FIN, which is ACKed at once', () => {
    const t = finWait2();
    expect(send(t.conn, seg({ flags: FIN | ACK, ack: l(2) }))).toBeNull();
    expect(t.conn.state).toBe(State.TIME_WAIT);
    expect(recv(t.conn, 0)).toEqual([out({ seq: l(2), ack: r(2), window: 65534 })]);
    expect(t.ev.transitions).toEqual([['FIN_WAIT_2', 'TIME_WAIT']]);
  });

  it('onFin comes before onClosed when FIN_WAIT_2 → TIME_WAIT; closeReason fin', () => {
    const t = finWait2();
    t.h.calls.length = 0;
    send(t.conn, seg({ flags: FIN | ACK, ack: l(2) }));
    expect(t.h.calls).toEqual(['fin', 'closed']);
    expect(t.conn.closeReason).toBe('fin');
    expect(t.ev.closes).toEqual([]);
  });

  it('Figure 5: FIN_WAIT_1 → TIME_WAIT when one segment acknowledges our FIN and carries the peer FIN', () => {
    const t = finWait1();
    expect(send(t.conn, seg({ flags: FIN | ACK, ack: l(2) }))).toBeNull();
    expect(t.conn.state).toBe(State.TIME_WAIT);
    expect(t.ev.transitions).toEqual([['FIN_WAIT_1', 'TIME_WAIT']]);
    expect(recv(t.conn, 0)).toEqual([out({ seq: l(2), ack: r(2), window: 65534 })]);
  });

  it('RFC 9293 §3.10.7.4: FIN_WAIT_2 keeps receiving data (half-close)', () => {
    const t = finWait2();
    expect(send(t.conn, seg({ ack: l(2), payload: 'more' }))).toBeNull();
    expect(t.h.received().toString()).toBe('more');
    expect(t.conn.state).toBe(State.FIN_WAIT_2);
  });

  it('RFC 9293 §3.10.7.4: FIN_WAIT_1 keeps receiving data', () => {
    const t = finWait1();
    expect(send(t.conn, seg({ payload: 'abc' }))).toBeNull();
    expect(t.h.received().toString()).toBe('abc');
  });

  it('FIN_WAIT_2 has no timeout inside the connection (the proxy owns idle timeouts)', () => {
    const t = finWait2();
    expect(t.conn.pollAt()).toBe(Infinity);
    recvNothing(t.conn, 10 * 60_000);
    expect(t.conn.state).toBe(State.FIN_WAIT_2);
  });

  it('RFC 6298 / RFC 9293 §3.10.4: an unacknowledged FIN is retransmitted after RTO', () => {
    const t = finWait1();
    expect(recv(t.conn, 1000)).toEqual([out({ flags: FIN | ACK })]);
    expect(t.ev.retransmits).toEqual(['rto']);
  });

  it('write() after close() is a programming error (ERR_TCP_WRITE_AFTER_CLOSE)', () => {
    const t = finWait1();
    let code = '';
    try {
      t.conn.write(Buffer.from('x'));
    } catch (e) {
      expect(e).toBeInstanceOf(TcpConnError);
      code = (e as TcpConnError).code;
    }
    expect(code).toBe('ERR_TCP_WRITE_AFTER_CLOSE');
  });
});

describe('the peer closes first (RFC 9293 §3.6)', () => {
  it('Figure 5: ESTABLISHED → CLOSE_WAIT on the peer FIN; onFin; the FIN is ACKed after delayedAckMs', () => {
    const t = established();
    expect(send(t.conn, seg({ flags: FIN | ACK }), 100)).toBeNull();
    expect(t.conn.state).toBe(State.CLOSE_WAIT);
    expect(t.h.fins).toBe(1);
    recvNothing(t.conn, 100);
    expect(t.conn.pollAt()).toBe(140);
    recvNothing(t.conn, 139);
    expect(recv(t.conn, 140)).toEqual([out({ ack: r(2), window: 65534 })]);
  });

  it('our FIN within delayedAckMs of theirs carries its ACK: one segment, no separate ACK', () => {
    const t = established();
    send(t.conn, seg({ flags: FIN | ACK }), 100);
    t.conn.close(110);
    expect(t.conn.state).toBe(State.LAST_ACK);
    expect(recv(t.conn, 110)).toEqual([out({ flags: FIN | ACK, ack: r(2), window: 65534 })]);
    // The delayed ACK was satisfied by the FIN: nothing more at its deadline.
    recvNothing(t.conn, 140);
  });


  it('RFC 9293 §3.10.7.4: data and FIN in one segment: onData, then onFin', () => {
    const t = established();
    send(t.conn, seg({ flags: FIN | ACK, payload: 'last' }));
    expect(t.h.calls).toEqual(['data', 'fin']);
    expect(t.h.received().toString()).toBe('last');
  });

  it('RFC 9293 §3.10.7.4: CLOSE_WAIT keeps sending data (half-close)', () => {
    const t = closeWait();
    expect(t.conn.write(Buffer.from('reply'))).toBe(true);
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(2), window: 65534, flags: PSH | ACK, payload: 'reply' })]);
  });

  it('Figure 5: CLOSE_WAIT → LAST_ACK on close(), FIN sent', () => {
    const t = closeWait();
    t.conn.close(0);
    expect(t.conn.state).toBe(State.LAST_ACK);
    expect(recv(t.conn, 0)).toEqual([out({ flags: FIN | ACK, ack: r(2), window: 65534 })]);
  });

  it('Figure 5: LAST_ACK → CLOSED when our FIN is acknowledged; closeReason fin', () => {
    const t = lastAck();
    expect(send(t.conn, seg({ seq: r(2), ack: l(2) }), 5)).toBeNull();
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.conn.closeReason).toBe('fin');
    expect(t.ev.closes).toEqual(['fin']);
    expect(t.ev.transitions).toEqual([['LAST_ACK', 'CLOSED']]);
    expect(t.h.closed).toBe(1);
    recvNothing(t.conn, 5);
  });

  it('RFC 9293 §3.10.7.4: a retransmitted peer FIN in CLOSE_WAIT is ACKed again', () => {
    const t = closeWait();
    expect(send(t.conn, seg({ flags: FIN | ACK }))).toBe('out_of_window');
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(2), window: 65534 })]);
    expect(t.h.calls).toEqual([]);
  });

  it('RFC 9293 §3.10.7.4: the FIN is processed only once the data before it is in order', () => {
    const t = established();
    send(t.conn, seg({ seq: r(4), flags: FIN | ACK, payload: 'def' }));
    expect(t.h.fins).toBe(0);
    expect(t.conn.state).toBe(State.ESTABLISHED);
    send(t.conn, seg({ payload: 'abc' }));
    expect(t.h.received().toString()).toBe('abcdef');
    expect(t.h.calls).toEqual(['data', 'fin']);
    expect(t.conn.state).toBe(State.CLOSE_WAIT);
  });
});

describe('simultaneous close (RFC 9293 §3.6 Figure 13)', () => {
  it('Figure 5: FIN_WAIT_1 → CLOSING on the peer FIN before the ACK of ours', () => {
    const t = finWait1();
    expect(send(t.conn, seg({ flags: FIN | ACK, ack: l(1) }))).toBeNull();
    expect(t.conn.state).toBe(State.CLOSING);
    expect(recv(t.conn, 0)).toEqual([out({ seq: l(2), ack: r(2), window: 65534 })]);
  });

  it('Figure 5: CLOSING → TIME_WAIT when our FIN is acknowledged', () => {
    const t = closing();
    expect(send(t.conn, seg({ seq: r(2), ack: l(2) }))).toBeNull();
    expect(t.conn.state).toBe(State.TIME_WAIT);
    expect(t.ev.transitions).toEqual([['CLOSING', 'TIME_WAIT']]);
    expect(t.h.closed).toBe(1);
    recvNothing(t.conn, 0);
  });
});

describe('close during the handshake', () => {
  it('Figure 5: SYN_RECEIVED → FIN_WAIT_1 on close(); the FIN goes once the SYN is acknowledged', () => {
    const t = synReceived();
    t.conn.close(0);
    expect(t.conn.state).toBe(State.FIN_WAIT_1);
    recvNothing(t.conn, 0);
    expect(send(t.conn, seg())).toBeNull();
    expect(t.h.established).toBe(1);
    expect(t.ev.handshakes.map((x) => x[0])).toEqual(['ok']);
    expect(recv(t.conn, 0)).toEqual([out({ flags: FIN | ACK })]);
    expect(t.conn.state).toBe(State.FIN_WAIT_1);
  });

  it('RFC 9293 §3.10.4: close() in SYN_RECEIVED with data queued waits for ESTABLISHED', () => {
    const t = synReceived();
    t.conn.write(Buffer.from('banner'));
    t.conn.close(0);
    expect(t.conn.state).toBe(State.SYN_RECEIVED);
    send(t.conn, seg());
    expect(t.ev.transitions.slice(-2)).toEqual([
      ['SYN_RECEIVED', 'ESTABLISHED'],
      ['ESTABLISHED', 'FIN_WAIT_1'],
    ]);
    expect(recv(t.conn, 0)).toEqual([out({ flags: FIN | PSH | ACK, payload: 'banner' })]);
  });
});

describe('TIME-WAIT in the connection (RFC 9293 §3.10.7.4, one implementation with time-wait.ts)', () => {
  it('RFC 9293 §3.3.2: TIME_WAIT → CLOSED after 2×MSL, reported from dispatch', () => {
    const t = timeWait();
    expect(t.conn.pollAt()).toBe(60_000);
    recvNothing(t.conn, 59_999);
    expect(t.conn.state).toBe(State.TIME_WAIT);
    recvNothing(t.conn, 60_000);
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.ev.transitions).toEqual([['TIME_WAIT', 'CLOSED']]);
    expect(t.ev.durations).toEqual([60_000]);
    expect(t.ev.closes).toEqual(['fin']);
  });

  it('RFC 9293 §3.10.7.4: a retransmitted FIN is ACKed again and the 2×MSL timer restarts', () => {
    const t = timeWait();
    expect(send(t.conn, seg({ flags: FIN | ACK, ack: l(2) }), 30_000)).toBeNull();
    expect(recv(t.conn, 30_000)).toEqual([out({ seq: l(2), ack: r(2), window: 65534 })]);
    recvNothing(t.conn, 60_000);
    expect(t.conn.state).toBe(State.TIME_WAIT);
    expect(t.conn.pollAt()).toBe(90_000);
    recvNothing(t.conn, 90_000);
    expect(t.conn.state).toBe(State.CLOSED);
  });

  it('RFC 1337: an RST in TIME_WAIT is ignored', () => {
    const t = timeWait();
    expect(send(t.conn, seg({ seq: r(2), flags: RST }), 10)).toBe('time_wait');
    expect(t.conn.state).toBe(State.TIME_WAIT);
    recvNothing(t.conn, 10);
  });

  it('RFC 9293 §3.10.7.4 / RFC 1122 §4.2.2.13: a SYN above RCV.NXT ends TIME-WAIT for a new incarnation', () => {
    const t = timeWait();
    expect(send(t.conn, synSeg({ seq: r(100_000) }), 10)).toBeNull();
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.conn.newIncarnationIss).toBe(((l(2) + 65537) >>> 0) || 1);
    expect(t.ev.transitions).toEqual([['TIME_WAIT', 'CLOSED']]);
    recvNothing(t.conn, 10);
  });

  it('RFC 5961 §4: an old SYN (below RCV.NXT) in TIME_WAIT gets an ACK and changes nothing', () => {
    const t = timeWait();
    expect(send(t.conn, synSeg({ seq: r(-5) }), 10)).toBe('time_wait');
    expect(t.conn.state).toBe(State.TIME_WAIT);
    expect(recv(t.conn, 10)).toEqual([out({ seq: l(2), ack: r(2), window: 65534 })]);
  });

  it('toTimeWait() hands over a compact record with the same rules', () => {
    const t = timeWait();
    const rec = t.conn.toTimeWait();
    expect(rec).toMatchObject({ id: 1, sndNxt: l(2), rcvNxt: r(2), window: 65534, enteredAt: 0, expiresAt: 60_000, tsEnabled: false });
  });

  it('toTimeWait() outside TIME_WAIT is a programming error', () => {
    const t = established();
    expect(() => t.conn.toTimeWait()).toThrow(TcpConnError);
  });

  it('TIME_WAIT sends ACKs with <SEQ=SND.NXT> even if data was sent before the close', () => {
    const t = established();
    t.conn.write(Buffer.from('12345'));
    t.conn.close(0);
    expect(recv(t.conn, 0)).toEqual([out({ flags: FIN | PSH | ACK, payload: '12345' })]);
    send(t.conn, seg({ ack: l(7) }));
    expect(t.conn.state).toBe(State.FIN_WAIT_2);
    send(t.conn, seg({ flags: FIN | ACK, ack: l(7) }));
    expect(recv(t.conn, 0)).toEqual([out({ seq: l(7), ack: r(2), window: 65534 })]);
    expect(t.conn.toTimeWait().sndNxt).toBe(l(7));
  });
});

describe('closing the owner side', () => {
  it('close() is idempotent once closing', () => {
    const t = finWait1();
    t.conn.close(0);
    expect(t.conn.state).toBe(State.FIN_WAIT_1);
    expect(t.ev.transitions).toEqual([]);
  });

  it('RFC 9293 §3.10.5: abort() sends <SEQ=SND.NXT><CTL=RST,ACK> and closes with reset_sent', () => {
    const t = established();
    t.conn.abort('abort', 3);
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.conn.closeReason).toBe('reset_sent');
    expect(t.ev.resets).toEqual([['sent', 'abort']]);
    expect(t.conn.pollAt()).toBe(0);
    expect(recv(t.conn, 3)).toEqual([out({ flags: RST | ACK, window: 0 })]);
    expect(t.conn.pollAt()).toBe(Infinity);
  });

  it('abort(upstream_refused) in SYN_RECEIVED reports the handshake as upstream_refused', () => {
    const t = synReceived();
    t.conn.abort('upstream_refused', 4);
    expect(t.ev.handshakes).toEqual([['upstream_refused', 4]]);
    expect(t.conn.closeReason).toBe('upstream_failed');
    expect(recv(t.conn, 4)).toEqual([out({ flags: RST | ACK, window: 0 })]);
  });

  it('RFC 9293 §3.10.5: abort() in SYN_SENT sends no RST', () => {
    const t = newConn();
    t.conn.connect(LOCAL_SEQ, 0);
    recv(t.conn, 0);
    t.conn.abort('abort', 1);
    expect(t.conn.state).toBe(State.CLOSED);
    recvNothing(t.conn, 1);
    expect(t.ev.resets).toEqual([]);
  });

  it('RFC 9293 §3.10.5: abort() in TIME_WAIT closes without RST; closeReason stays fin', () => {
    const t = timeWait();
    t.conn.abort('shutdown', 1);
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.conn.closeReason).toBe('fin');
    recvNothing(t.conn, 1);
  });

  it('onClosed fires exactly once per connection', () => {
    const t = timeWait();
    recv(t.conn, 60_000);
    expect(t.conn.state).toBe(State.CLOSED);
    expect(t.h.closed).toBe(1);
  });
});
