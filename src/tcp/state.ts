/**
 * The eleven connection states of RFC 9293 §3.3.2 (Figure 5), numbered so they can index arrays.
 * Names are spelled as in the RFC with underscores: these exact strings are metric label values
 * (see the product contract), so never rename them.
 */
export const State = {
  CLOSED: 0,
  LISTEN: 1,
  SYN_SENT: 2,
  SYN_RECEIVED: 3,
  ESTABLISHED: 4,
  FIN_WAIT_1: 5,
  FIN_WAIT_2: 6,
  CLOSE_WAIT: 7,
  CLOSING: 8,
  LAST_ACK: 9,
  TIME_WAIT: 10,
} as const;

export type State = (typeof State)[keyof typeof State];

export const STATE_COUNT = 11;

export const STATE_NAMES = [
  'CLOSED',
  'LISTEN',
  'SYN_SENT',
  'SYN_RECEIVED',
  'ESTABLISHED',
  'FIN_WAIT_1',
  'FIN_WAIT_2',
  'CLOSE_WAIT',
  'CLOSING',
  'LAST_ACK',
  'TIME_WAIT',
] as const;

export type StateName = (typeof STATE_NAMES)[number];

export function stateName(s: State): StateName {
  return STATE_NAMES[s] as StateName;
}

/** States in which the connection is synchronized (RFC 9293 §3.10.7.4 "synchronized states"). */
export function isSynchronized(s: State): boolean {
  return s >= State.ESTABLISHED;
}
