/**
 * The stack's event hub: the one implementation of `TcpEventSink` that the connections and the
 * stack report to, fanning each event out to the subscribers (metrics, logs, /api/events).
 * With no subscriber an event costs one empty loop; subscribers implement only what they need.
 */
import type {
  CloseReason,
  ConnIdentity,
  DropReason,
  HandshakeResult,
  ResetDirection,
  ResetReason,
  RetransmitKind,
  TcpEventSink,
} from '../tcp/events.js';
import type { State } from '../tcp/state.js';

export type EventSubscriber = Partial<TcpEventSink> & {
  /** A connection was created (a SYN accepted for dialling, or an active open). */
  opened?(conn: ConnIdentity, family: 4 | 6, now: number): void;
};

type Method = keyof EventSubscriber;

export class EventHub implements TcpEventSink {
  private stateChangeSubs: EventSubscriber[] = [];
  private handshakeSubs: EventSubscriber[] = [];
  private retransmitSubs: EventSubscriber[] = [];
  private resetSubs: EventSubscriber[] = [];
  private dropSubs: EventSubscriber[] = [];
  private rttSubs: EventSubscriber[] = [];
  private closedSubs: EventSubscriber[] = [];
  private openedSubs: EventSubscriber[] = [];

  /** Add a subscriber; returns a function that removes it. */
  subscribe(sub: EventSubscriber): () => void {
    const lists = this.listsFor(sub);
    for (const list of lists) list.push(sub);
    return () => {
      for (const list of lists) {
        const i = list.indexOf(sub);
        if (i >= 0) list.splice(i, 1);
      }
    };
  }

  get hasStateSubscribers(): boolean {
    return this.stateChangeSubs.length > 0;
  }

  stateChange(conn: ConnIdentity, from: State, to: State, now: number, sinceMs: number): void {
    const subs = this.stateChangeSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.stateChange!(conn, from, to, now, sinceMs);
  }
  handshake(conn: ConnIdentity, result: HandshakeResult, durationMs: number): void {
    const subs = this.handshakeSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.handshake!(conn, result, durationMs);
  }
  retransmit(conn: ConnIdentity, kind: RetransmitKind): void {
    const subs = this.retransmitSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.retransmit!(conn, kind);
  }
  reset(conn: ConnIdentity | null, direction: ResetDirection, reason: ResetReason): void {
    const subs = this.resetSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.reset!(conn, direction, reason);
  }
  drop(conn: ConnIdentity | null, reason: DropReason): void {
    const subs = this.dropSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.drop!(conn, reason);
  }
  rtt(conn: ConnIdentity, srttMs: number): void {
    const subs = this.rttSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.rtt!(conn, srttMs);
  }
  closed(conn: ConnIdentity, reason: CloseReason, now: number): void {
    const subs = this.closedSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.closed!(conn, reason, now);
  }
  opened(conn: ConnIdentity, family: 4 | 6, now: number): void {
    const subs = this.openedSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.opened!(conn, family, now);
  }

  private listsFor(sub: EventSubscriber): EventSubscriber[][] {
    const lists: EventSubscriber[][] = [];
    const table: [Method, EventSubscriber[]][] = [
      ['stateChange', this.stateChangeSubs],
      ['handshake', this.handshakeSubs],
      ['retransmit', this.retransmitSubs],
      ['reset', this.resetSubs],
      ['drop', this.dropSubs],
      ['rtt', this.rttSubs],
      ['closed', this.closedSubs],
      ['opened', this.openedSubs],
    ];
    for (const [method, list] of table) if (typeof sub[method] === 'function') lists.push(list);
    return lists;
  }
}
