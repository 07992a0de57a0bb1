import { describe, expect, it } from 'vitest';
import {
  ChallengeAckBudget,
  ackAcceptable,
  inWindowRstVerdict,
  isRetransmittedSyn,
} from '../../src/tcp/challenge-ack.js';
import { State } from '../../src/tcp/state.js';
import { ACK, LOCAL_SEQ, REMOTE_SEQ, RST, SYN, closeWait, established, l, out, r, recv, recvNothing, send, seg, synReceived, synSeg } from './helpers.js';

describe('the RFC 5961 verdicts', () => {
  it('resets on an in-window RST only at exactly RCV.NXT (RFC 5961 §3.2)', () => {
    expect(inWindowRstVerdict(1000, 1000)).toBe('reset');
    expect(inWindowRstVerdict(1001, 1000)).toBe('challenge');
    expect(inWindowRstVerdict(999, 1000)).toBe('challenge');
  });

  it('recognises a retransmission of the opening SYN only while the SYN-ACK is unacknowledged (RFC 9293 §3.8.1)', () => {
    expect(isRetransmittedSyn(SYN, 7, 7, false)).toBe(true);
    expect(isRetransmittedSyn(SYN, 7, 7, true)).toBe(false);
    expect(isRetransmittedSyn(SYN, 8, 7, false)).toBe(false);
    expect(isRetransmittedSyn(SYN | ACK, 7, 7, false)).toBe(false);
    expect(isRetransmittedSyn(SYN | RST, 7, 7, false)).toBe(false);
  });

  it('accepts SEG.ACK from SND.UNA − max(MAX.SND.WND, 65535) to SND.NXT, across the wrap (RFC 5961 §5.2)', () => {
    const una = 0x10;
    expect(ackAcceptable(una + 100, una, una + 100, 0)).toBe(true);
    expect(ackAcceptable(una + 101, una, una + 100, 0)).toBe(false);
    expect(ackAcceptable((una - 0xffff) >>> 0, una, una + 100, 0)).toBe(true);
    expect(ackAcceptable((una - 0x10000) >>> 0, una, una + 100, 0)).toBe(false);
    expect(ackAcceptable((una - 200_000) >>> 0, una, una + 100, 200_000)).toBe(true);
    expect(ackAcceptable((una - 200_001) >>> 0, una, una + 100, 200_000)).toBe(false);
  });
});

describe('ChallengeAckBudget (RFC 5961 §7)', () => {
  it('allows the limit per one-second window and refills a second after the window began', () => {
    const b = new ChallengeAckBudget();
    expect([b.take(100, 2), b.take(200, 2), b.take(1099, 2)]).toEqual([true, true, false]);
    expect([b.take(1100, 2), b.take(1100, 2), b.take(1100, 2)]).toEqual([true, true, false]);
  });

  it('allows nothing with a limit of 0', () => {
    expect(new ChallengeAckBudget().take(0, 0)).toBe(false);
  });
});

describe('challenge ACKs for RSTs (RFC 5961 §3.2)', () => {
  it('answers an in-window RST with the wrong sequence number with a challenge ACK (RFC 5961 §3.2)', () => {
    const t = established();
    expect(send(t.conn, seg({ seq: r(100), flags: RST }))).toBe('rst_invalid');
    expect(t.conn.state).toBe(State.ESTABLISHED);
    expect(recv(t.conn, 0)).toEqual([out()]);
  });

  it('drops an RST outside the window silently (RFC 5961 §3.2)', () => {
    const t = established();
    expect(send(t.conn, seg({ seq: r(100_000), flags: RST }))).toBe('rst_invalid');
    expect(send(t.conn, seg({ seq: r(0), flags: RST }))).toBe('rst_invalid');
    recvNothing(t.conn, 0);
    expect(t.conn.state).toBe(State.ESTABLISHED);
  });

  it('limits challenge ACKs to cfg.challengeAckLimitPerSec per second (RFC 5961 §7)', () => {
    const t = established({ cfg: { challengeAckLimitPerSec: 2 } });
    expect(send(t.conn, seg({ seq: r(10), flags: RST }), 100)).toBe('rst_invalid');
    expect(send(t.conn, seg({ seq: r(11), flags: RST }), 200)).toBe('rst_invalid');
    expect(send(t.conn, seg({ seq: r(12), flags: RST }), 300)).toBe('challenge_ack_limit');
    expect(recv(t.conn, 300)).toEqual([out()]);
    expect(send(t.conn, seg({ seq: r(13), flags: RST }), 1100)).toBe('rst_invalid');
    expect(recv(t.conn, 1100)).toEqual([out()]);
    expect(t.ev.drops).toEqual(['rst_invalid', 'rst_invalid', 'challenge_ack_limit', 'rst_invalid']);
  });

  it('shares one budget between RST, SYN and ACK challenges (RFC 5961 §7)', () => {
    const t = established({ cfg: { challengeAckLimitPerSec: 2 } });
    expect(send(t.conn, seg({ seq: r(10), flags: RST }), 100)).toBe('rst_invalid');
    expect(send(t.conn, synSeg({ seq: r(1) }), 100)).toBe('syn_in_window');
    expect(send(t.conn, seg({ ack: l(50) }), 100)).toBe('challenge_ack_limit');
  });
});

describe('challenge ACKs for SYNs in a synchronized state (RFC 5961 §4)', () => {
  it('answers a SYN in ESTABLISHED (in window) with a challenge ACK and changes nothing (RFC 5961 §4)', () => {
    const t = established();
    expect(send(t.conn, synSeg({ seq: r(1) }))).toBe('syn_in_window');
    expect(t.conn.state).toBe(State.ESTABLISHED);
    expect(recv(t.conn, 0)).toEqual([out()]);
  });

  it('answers a SYN outside the window in ESTABLISHED with an ACK too, not a reset (RFC 5961 §4)', () => {
    const t = established();
    send(t.conn, synSeg({ seq: r(1_000_000) }));
    expect(t.conn.state).toBe(State.ESTABLISHED);
    expect(recv(t.conn, 0)).toEqual([out()]);
  });

  it('answers a SYN in CLOSE_WAIT with a challenge ACK (RFC 5961 §4)', () => {
    const t = closeWait();
    send(t.conn, synSeg({ seq: r(2) }));
    expect(t.conn.state).toBe(State.CLOSE_WAIT);
    expect(recv(t.conn, 0)).toEqual([out({ ack: r(2), window: 65534 })]);
  });

  it('resends the SYN-ACK for retransmitted SYNs in SYN_RECEIVED within the budget, then drops them (RFC 5961 §7)', () => {
    const t = synReceived({ cfg: { challengeAckLimitPerSec: 1 } });
    recv(t.conn, 0);
    expect(send(t.conn, synSeg({ seq: REMOTE_SEQ }), 5)).toBeNull();
    expect(recv(t.conn, 5)).toEqual([out({ seq: LOCAL_SEQ, ack: r(1), flags: SYN | ACK, mss: 1460 })]);
    expect(send(t.conn, synSeg({ seq: REMOTE_SEQ }), 6)).toBe('challenge_ack_limit');
    recvNothing(t.conn, 6);
  });
});

describe('challenge ACKs for unacceptable ACKs (RFC 5961 §5.2)', () => {
  it('answers an ACK for data not yet sent (> SND.NXT) with an ACK and drops it (RFC 5961 §5.2)', () => {
    const t = established();
    expect(send(t.conn, seg({ ack: l(50), payload: 'x' }))).toBe('bad_ack');
    expect(t.h.chunks).toEqual([]);
    expect(recv(t.conn, 0)).toEqual([out()]);
  });

  it('answers an ACK below SND.UNA − MAX.SND.WND with a challenge ACK and drops it (RFC 5961 §5.2)', () => {
    const t = established();
    expect(send(t.conn, seg({ ack: l(-70_000), payload: 'x' }))).toBe('bad_ack');
    expect(t.h.chunks).toEqual([]);
    expect(recv(t.conn, 0)).toEqual([out()]);
  });
});
