import { describe, expect, it } from 'vitest';
import { identity } from '../helpers/identity.js';
import { OutSegment } from '../../src/wire/segment.js';
import {
  TimeWaitRecord,
  buildTimeWaitAck,
  nextIssAfterTimeWait,
  reportTimeWaitClosed,
  timeWaitProcess,
} from '../../src/tcp/time-wait.js';
import { ACK, FIN, RST, SYN, RecordingEvents, seg, testConfig } from './helpers.js';

const cfg = testConfig({ mslMs: 30_000 });
/** RCV.NXT just past the wrap; the peer's FIN was at 0x0000000f. */
const RCV_NXT = 0x10;
const SND_NXT = 0xfffffff0;

function rec(ts = false): TimeWaitRecord {
  return new TimeWaitRecord({ id: 7, sndNxt: SND_NXT, rcvNxt: RCV_NXT, window: 1000, tsEnabled: ts, tsRecent: 5000, tsRecentAt: 0, tsOffset: 100, enteredAt: 0, expiresAt: 60_000 });
}

describe('timeWaitProcess (RFC 9293 §3.10.7.4 TIME-WAIT, Linux tcp_timewait_state_process)', () => {
  it('RFC 9293 §3.10.7.4: a retransmitted FIN is re-ACKed and the 2×MSL timer restarts', () => {
    const r = rec();
    expect(timeWaitProcess(r, seg({ seq: 0x0f, ack: SND_NXT, flags: FIN | ACK }), 20_000, cfg)).toBe('ack_restart');
    expect(r.expiresAt).toBe(80_000);
  });

  it('RFC 9293 §3.10.7.4: a retransmitted FIN with its data is recognised too', () => {
    const r = rec();
    expect(timeWaitProcess(r, seg({ seq: 0x0c, ack: SND_NXT, flags: FIN | ACK, payload: 'abc' }), 5, cfg)).toBe('ack_restart');
  });

  it('RFC 1337: an RST is ignored, even one exactly at RCV.NXT', () => {
    const r = rec();
    expect(timeWaitProcess(r, seg({ seq: RCV_NXT, flags: RST }), 5, cfg)).toBe('drop');
    expect(timeWaitProcess(r, seg({ seq: RCV_NXT, flags: RST | ACK }), 5, cfg)).toBe('drop');
    expect(r.expiresAt).toBe(60_000);
  });

  it('RFC 1122 §4.2.2.13: a SYN above RCV.NXT (no timestamps) opens a new incarnation', () => {
    expect(timeWaitProcess(rec(), seg({ seq: RCV_NXT + 1, flags: SYN }), 5, cfg)).toBe('accept_syn');
  });

  it('RFC 1122 §4.2.2.13: a SYN at or below RCV.NXT is an old duplicate: ACK (RFC 5961 §4)', () => {
    expect(timeWaitProcess(rec(), seg({ seq: RCV_NXT, flags: SYN }), 5, cfg)).toBe('ack');
    expect(timeWaitProcess(rec(), seg({ seq: 0xfffffff0, flags: SYN }), 5, cfg)).toBe('ack');
  });

  it('RFC 6191 §2: with timestamps a SYN with a newer TSval is accepted whatever its sequence number', () => {
    expect(timeWaitProcess(rec(true), seg({ seq: 1, flags: SYN, ts: [5001, 0] }), 5, cfg)).toBe('accept_syn');
  });

  it('RFC 6191 §2: with timestamps a SYN with an older or equal TSval is not accepted, even above RCV.NXT', () => {
    expect(timeWaitProcess(rec(true), seg({ seq: RCV_NXT + 100, flags: SYN, ts: [5000, 0] }), 5, cfg)).toBe('ack');
    expect(timeWaitProcess(rec(true), seg({ seq: RCV_NXT + 100, flags: SYN, ts: [4000, 0] }), 5, cfg)).toBe('ack');
  });

  it('RFC 6191: a SYN without timestamps falls back to the sequence-number rule', () => {
    expect(timeWaitProcess(rec(true), seg({ seq: RCV_NXT + 5, flags: SYN }), 5, cfg)).toBe('accept_syn');
  });

  it('a SYN with ACK never opens a new incarnation', () => {
    expect(timeWaitProcess(rec(), seg({ seq: RCV_NXT + 5, flags: SYN | ACK }), 5, cfg)).toBe('ack');
  });

  it('a bare ACK at RCV.NXT needs nothing: dropped silently, timer unchanged', () => {
    const r = rec();
    expect(timeWaitProcess(r, seg({ seq: RCV_NXT, ack: SND_NXT }), 5, cfg)).toBe('drop');
    expect(r.expiresAt).toBe(60_000);
  });

  it('RFC 9293 §3.10.7.4: data in TIME-WAIT is not acceptable: ACK', () => {
    expect(timeWaitProcess(rec(), seg({ seq: RCV_NXT, payload: 'x' }), 5, cfg)).toBe('ack');
    expect(timeWaitProcess(rec(), seg({ seq: RCV_NXT + 1000 }), 5, cfg)).toBe('ack');
  });

  it('RFC 7323 §4.3: an accepted retransmitted FIN updates TS.Recent', () => {
    const r = rec(true);
    timeWaitProcess(r, seg({ seq: 0x0f, flags: FIN | ACK, ts: [6000, 0] }), 7, cfg);
    expect([r.tsRecent, r.tsRecentAt]).toEqual([6000, 7]);
  });
});

describe('TIME-WAIT helpers', () => {
  it('buildTimeWaitAck: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> with the recorded window', () => {
    const o = new OutSegment();
    o.payloadLength = 99;
    buildTimeWaitAck(rec(), 5, o);
    expect([o.seq, o.ack, o.flags, o.window, o.payloadLength, o.options.tsPresent]).toEqual([SND_NXT, RCV_NXT, ACK, 1000, 0, false]);
  });

  it('RFC 7323 §3.2: buildTimeWaitAck carries TSopt when timestamps were on (TSval = now + tsOffset, TSecr = TS.Recent)', () => {
    const o = new OutSegment();
    buildTimeWaitAck(rec(true), 1234.9, o);
    expect([o.options.tsPresent, o.options.tsVal, o.options.tsEcr]).toEqual([true, 1334, 5000]);
  });

  it('RFC 1122 §4.2.2.13 (1): the new ISS is above the old SND.NXT by a margin (mod 2^32, never 0)', () => {
    expect(nextIssAfterTimeWait(rec())).toBe((SND_NXT + 65537) >>> 0);
    const r = rec();
    r.sndNxt = (0 - 65537) >>> 0;
    expect(nextIssAfterTimeWait(r)).toBe(1);
  });

  it('reportTimeWaitClosed reports TIME_WAIT → CLOSED with the time spent and close reason fin', () => {
    const ev = new RecordingEvents();
    const r = rec();
    r.enteredAt = 1000;
    reportTimeWaitClosed(identity(r.id, 0), r, ev, 61_000);
    expect(ev.transitions).toEqual([['TIME_WAIT', 'CLOSED']]);
    expect(ev.durations).toEqual([60_000]);
    expect(ev.closes).toEqual(['fin']);
  });
});
