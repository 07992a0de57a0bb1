import { describe, expect, it } from 'vitest';
import { keepaliveApplies, keepaliveDeadline, keepaliveProbeSeq, keepaliveTimeout } from '../../src/tcp/keepalive.js';
import { State } from '../../src/tcp/state.js';
import { ACK, RST, established, l, out, recv, send, seg } from './helpers.js';

describe('the keepalive rules (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6)', () => {
  it('applies only when configured, in ESTABLISHED and CLOSE_WAIT (RFC 9293 §3.8.4)', () => {
    expect(keepaliveApplies(1000, State.ESTABLISHED)).toBe(true);
    expect(keepaliveApplies(1000, State.CLOSE_WAIT)).toBe(true);
    expect(keepaliveApplies(1000, State.FIN_WAIT_2)).toBe(false);
    expect(keepaliveApplies(0, State.ESTABLISHED)).toBe(false);
  });

  it('is due idleMs after the last segment received, then intervalMs after each probe', () => {
    expect(keepaliveDeadline(10_000, 1000, 0, 500, 0)).toBe(10_500);
    expect(keepaliveDeadline(10_000, 1000, 1, 500, 10_500)).toBe(11_500);
  });

  it('hands over to the retransmission timer while data is outstanding, else probes until maxProbes (RFC 1122 §4.2.3.6)', () => {
    expect(keepaliveTimeout(false, State.ESTABLISHED, 0, 2)).toBe('retransmit');
    expect(keepaliveTimeout(true, State.FIN_WAIT_1, 0, 2)).toBe('rearm');
    expect(keepaliveTimeout(true, State.CLOSE_WAIT, 1, 2)).toBe('probe');
    expect(keepaliveTimeout(true, State.ESTABLISHED, 2, 2)).toBe('give_up');
  });

  it('probes with SEQ = SND.NXT − 1, across the wrap (RFC 9293 §3.8.4)', () => {
    expect(keepaliveProbeSeq(100)).toBe(99);
    expect(keepaliveProbeSeq(0)).toBe(0xffffffff);
  });
});

describe('keepalive in a connection (RFC 9293 §3.8.4)', () => {
  it('probes with <SEQ=SND.NXT−1> after cfg.keepaliveIdleMs of silence, then every keepaliveIntervalMs (RFC 9293 §3.8.4)', () => {
    const t = established({ cfg: { keepaliveIdleMs: 10_000, keepaliveIntervalMs: 1000, keepaliveProbes: 2 } });
    expect(t.conn.pollAt()).toBe(10_000);
    expect(recv(t.conn, 10_000)).toEqual([out({ seq: l(0) })]);
    expect(recv(t.conn, 11_000)).toEqual([out({ seq: l(0) })]);
  });

  it('starts over from the idle time when the peer answers (RFC 9293 §3.8.4)', () => {
    const t = established({ cfg: { keepaliveIdleMs: 10_000, keepaliveIntervalMs: 1000, keepaliveProbes: 2 } });
    recv(t.conn, 10_000);
    send(t.conn, seg(), 10_050);
    recv(t.conn, 10_050);
    expect(t.conn.pollAt()).toBe(20_050);
  });

  it('resets the connection after cfg.keepaliveProbes unanswered probes, reason idle_timeout (RFC 9293 §3.8.4)', () => {
    const t = established({ cfg: { keepaliveIdleMs: 10_000, keepaliveIntervalMs: 1000, keepaliveProbes: 2 } });
    recv(t.conn, 10_000);
    recv(t.conn, 11_000);
    expect(recv(t.conn, 12_000)).toEqual([out({ flags: RST | ACK, window: 0 })]);
    expect(t.conn.closeReason).toBe('idle_timeout');
    expect(t.ev.resets).toEqual([['sent', 'idle_timeout']]);
  });

  it('sends no probe when cfg.keepaliveIdleMs = 0 (RFC 9293 §3.8.4: MUST default to off)', () => {
    const t = established();
    expect(t.conn.pollAt()).toBe(Infinity);
  });
});

