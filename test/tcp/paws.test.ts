import { describe, expect, it } from 'vitest';
import { PAWS_IDLE_MS, pawsRejects, tsRecentTakes } from '../../src/tcp/paws.js';
import { State } from '../../src/tcp/state.js';
import { TimeWaitRecord, timeWaitProcess } from '../../src/tcp/time-wait.js';
import { ACK, FIN, RST, established, out, recv, send, seg, testConfig } from './helpers.js';

describe('pawsRejects (RFC 7323 §5.3 R1, §5.5)', () => {
  it('rejects a TSval older than TS.Recent (RFC 7323 §5.3 R1)', () => {
    expect(pawsRejects(5000, 0, 4999, 10)).toBe(true);
  });

  it('accepts a TSval equal to or newer than TS.Recent, across the 2^32 wrap (RFC 7323 §5.3 R1)', () => {
    expect(pawsRejects(5000, 0, 5000, 10)).toBe(false);
    expect(pawsRejects(0xfffffff0, 0, 0x10, 10)).toBe(false);
    expect(pawsRejects(0x10, 0, 0xfffffff0, 10)).toBe(true);
  });

  it('no longer rejects once TS.Recent is more than 24 days old (RFC 7323 §5.5)', () => {
    expect(pawsRejects(5000, 0, 1, PAWS_IDLE_MS)).toBe(true);
    expect(pawsRejects(5000, 0, 1, PAWS_IDLE_MS + 1)).toBe(false);
  });
});

describe('tsRecentTakes (RFC 7323 §5.3 R3)', () => {
  it('takes a newer or equal TSval of a segment at or before Last.ACK.sent (RFC 7323 §5.3 R3)', () => {
    expect(tsRecentTakes(5000, 0, 5000, 100, 100, 10, false)).toBe(true);
    expect(tsRecentTakes(5000, 0, 6000, 90, 100, 10, false)).toBe(true);
  });

  it('ignores a segment beyond Last.ACK.sent, whatever its TSval (RFC 7323 §4.3)', () => {
    expect(tsRecentTakes(5000, 0, 6000, 101, 100, 10, true)).toBe(false);
  });

  it('keeps TS.Recent against an older TSval while it is valid (RFC 7323 §5.3 R3)', () => {
    expect(tsRecentTakes(5000, 0, 4999, 100, 100, 10, true)).toBe(false);
  });

  it('renews a TS.Recent older than 24 days with an older TSval only when asked (TIME-WAIT, as Linux)', () => {
    const later = PAWS_IDLE_MS + 1;
    expect(tsRecentTakes(5000, 0, 4000, 100, 100, later, true)).toBe(true);
    expect(tsRecentTakes(5000, 0, 4000, 100, 100, later, false)).toBe(false);
  });
});

describe('PAWS in a connection (RFC 7323 §5)', () => {
  const TS = { cfg: { timestamps: true }, syn: { ts: [5000, 0] as [number, number] } };

  it('drops a segment with an older TSval and answers it with an ACK (RFC 7323 §5.3 R1)', () => {
    const t = established(TS);
    expect(send(t.conn, seg({ payload: 'old', ts: [4000, 0] }))).toBe('paws');
    expect(t.h.chunks).toEqual([]);
    expect(recv(t.conn, 0)).toEqual([out({ ts: [0, 5001] })]);
  });

  it('does not apply PAWS to an RST (RFC 7323 §5.3 R1)', () => {
    const t = established(TS);
    expect(send(t.conn, seg({ flags: RST, ts: [1, 0] }))).toBeNull();
    expect(t.conn.state).toBe(State.CLOSED);
  });

  it('accepts an old TSval after 24 days of idleness (RFC 7323 §5.5)', () => {
    const t = established(TS);
    const later = PAWS_IDLE_MS + 1;
    expect(send(t.conn, seg({ payload: 'late', ts: [4000, 0] }), later)).toBeNull();
    expect(t.h.received().toString()).toBe('late');
  });

  it('keeps a stale TS.Recent when an older TSval is accepted after 24 days (RFC 7323 §5.3 R3 to the letter)', () => {
    const t = established(TS);
    const later = PAWS_IDLE_MS + 1;
    send(t.conn, seg({ payload: 'late', ts: [4000, 0] }), later);
    expect(t.conn.tsRecent).toBe(5001);
  });
});

describe('PAWS in TIME-WAIT (RFC 7323 §5, Linux tcp_timewait_state_process)', () => {
  const cfg = testConfig({ mslMs: 30_000 });
  const RCV_NXT = 0x10;
  const SND_NXT = 0xfffffff0;
  const rec = (): TimeWaitRecord => new TimeWaitRecord({ id: 7, sndNxt: SND_NXT, rcvNxt: RCV_NXT, window: 1000, tsEnabled: true, tsRecent: 5000, tsRecentAt: 0, tsOffset: 100, enteredAt: 0, expiresAt: 60_000 });

  it('answers an older TSval with an ACK and does not restart the timer (RFC 7323 §5.3 R1)', () => {
    const r = rec();
    expect(timeWaitProcess(r, seg({ seq: 0x0f, flags: FIN | ACK, ts: [4999, 0] }), 5, cfg)).toBe('ack');
    expect(r.expiresAt).toBe(60_000);
  });

  it('no longer rejects once TS.Recent is more than 24 days old (RFC 7323 §5.5)', () => {
    const r = rec();
    expect(timeWaitProcess(r, seg({ seq: 0x0f, flags: FIN | ACK, ts: [1, 0] }), PAWS_IDLE_MS + 1, cfg)).toBe('ack_restart');
  });

  it('renews a 24-day-old TS.Recent with the accepted FIN\'s older TSval (as Linux)', () => {
    const r = rec();
    timeWaitProcess(r, seg({ seq: 0x0f, flags: FIN | ACK, ts: [1, 0] }), PAWS_IDLE_MS + 1, cfg);
    expect([r.tsRecent, r.tsRecentAt]).toEqual([1, PAWS_IDLE_MS + 1]);
  });
});
