/**
 * Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6). Plain numbers in, a deadline or a verdict out;
 * the connection owns the timer (ConnTimers, kind IDLE), the count of unanswered probes and when
 * it last heard from the peer.
 *
 * - Keepalives are off unless configured (cfg.keepaliveIdleMs > 0: "MUST default to off"), and
 *   run only in ESTABLISHED and CLOSE_WAIT (a connection that may still receive our data but has
 *   nothing in flight).
 * - The first probe goes cfg.keepaliveIdleMs after the last segment received (§3.8.4: the
 *   interval "MUST be configurable"), the next ones every cfg.keepaliveIntervalMs.
 * - A probe is <SEQ=SND.NXT−1><ACK=RCV.NXT><CTL=ACK> with no data: an old sequence number that
 *   the peer must answer with an ACK.
 * - Any acceptable ACK resets the count; after cfg.keepaliveProbes unanswered probes the peer is
 *   taken for gone: the connection is reset ('idle_timeout').
 * - While data is outstanding the retransmission timer is in charge, not keepalive.
 */
import { seqAdd } from './seq.js';
import { State } from './state.js';

/** Keepalives run in this state with this configuration (cfg.keepaliveIdleMs; 0 is off). */
export function keepaliveApplies(keepaliveIdleMs: number, state: State): boolean {
  return keepaliveIdleMs > 0 && (state === State.ESTABLISHED || state === State.CLOSE_WAIT);
}

/**
 * When the next probe is due: idleMs after the last segment received before the first probe,
 * intervalMs after the last probe afterwards.
 */
export function keepaliveDeadline(
  idleMs: number,
  intervalMs: number,
  probesSent: number,
  lastRecvAt: number,
  lastProbeAt: number,
): number {
  return probesSent === 0 ? lastRecvAt + idleMs : lastProbeAt + intervalMs;
}

/**
 * What the idle timer does when it fires:
 * - 'retransmit': data is outstanding: hand over to the retransmission timer;
 * - 'rearm': keepalives do not apply in this state: re-arm the idle timer (no deadline);
 * - 'give_up': `maxProbes` probes went unanswered: reset ('idle_timeout');
 * - 'probe': send a probe, count it and re-arm.
 */
export type KeepaliveVerdict = 'retransmit' | 'rearm' | 'give_up' | 'probe';

export function keepaliveTimeout(sndIdle: boolean, state: State, probesSent: number, maxProbes: number): KeepaliveVerdict {
  if (!sndIdle) return 'retransmit';
  if (state !== State.ESTABLISHED && state !== State.CLOSE_WAIT) return 'rearm';
  if (probesSent >= maxProbes) return 'give_up';
  return 'probe';
}

/** RFC 9293 §3.8.4: the probe's sequence number, SND.NXT − 1 (SND.NXT being SND.MAX here). */
export function keepaliveProbeSeq(sndMax: number): number {
  return seqAdd(sndMax, -1);
}
