/**
 * A connection's timers as plain data (smoltcp's `Timer`): the connection never owns a real
 * timer; `TcpConn.pollAt()` reports the earliest deadline and the stack's one scheduler calls
 * `dispatch(now)` then. Stopping a timer is an assignment.
 *
 * The "main" timer has one meaning at a time, as in smoltcp and BSD:
 * - IDLE: nothing outstanding; `at` is the next keepalive probe (RFC 9293 §3.8.4) or Infinity;
 * - RETRANSMIT: SYN, SYN-ACK, data or FIN awaiting acknowledgment (RFC 6298 §5);
 * - PERSIST: the peer's window is zero and we have something to send (RFC 9293 §3.8.6.1);
 * - TIME_WAIT: 2×MSL expiry (RFC 9293 §3.3.2).
 * The delayed-ACK deadline (RFC 9293 §3.8.6.3) runs alongside any of them.
 */
export const TimerKind = {
  IDLE: 0,
  RETRANSMIT: 1,
  PERSIST: 2,
  TIME_WAIT: 3,
} as const;

export type TimerKind = (typeof TimerKind)[keyof typeof TimerKind];


export class ConnTimers {
  /** What the main timer means now. */
  kind: TimerKind = TimerKind.IDLE;
  /** Main timer deadline (ms), Infinity when not running. */
  at = Infinity;
  /** Delayed-ACK deadline (ms), Infinity when no ACK is being delayed. */
  delackAt = Infinity;

  setIdle(keepaliveAt: number): void {
    this.kind = TimerKind.IDLE;
    this.at = keepaliveAt;
  }

  setRetransmit(at: number): void {
    this.kind = TimerKind.RETRANSMIT;
    this.at = at;
  }

  setPersist(at: number): void {
    this.kind = TimerKind.PERSIST;
    this.at = at;
  }

  setTimeWait(at: number): void {
    this.kind = TimerKind.TIME_WAIT;
    this.at = at;
  }

  /** True while the retransmission timer is armed (RFC 6298 §5.1 "if the timer is not running"). */
  get retransmitRunning(): boolean {
    return this.kind === TimerKind.RETRANSMIT && this.at !== Infinity;
  }

  /** The earliest deadline of all timers. */
  next(): number {
    return this.at < this.delackAt ? this.at : this.delackAt;
  }

  clear(): void {
    this.kind = TimerKind.IDLE;
    this.at = Infinity;
    this.delackAt = Infinity;
  }
}
