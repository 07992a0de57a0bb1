/**
 * The event hub: the one implementation of `TcpEventSink` that the connections and the stack
 * report to, and of `UpstreamEvents` that the proxy reports the upstream legs to, fanning each
 * event out to the subscribers (metrics, logs, the connection table, the flight recorder,
 * /api/events). With no subscriber an event costs one empty loop; subscribers implement only what
 * they need. Events carry the objects the stack and the proxy already have (ConnIdentity,
 * UpstreamLeg), so publishing allocates nothing.
 */
import type {
  CloseReason,
  ConnIdentity,
  DropReason,
  HandshakeResult,
  ResetDirection,
  ResetReason,
  RetransmitKind,
  SlowStartExitReason,
  TcpEventSink,
} from '../tcp/events.js';
import type { State } from '../tcp/state.js';
import type { ByteCounters, UpstreamEvents, UpstreamLeg, UpstreamResult } from './upstream-leg.js';

export type EventSubscriber = Partial<TcpEventSink> &
  Partial<UpstreamEvents> & {
    /** A connection was created (a SYN accepted for dialling, or an active open). */
    opened?(conn: ConnIdentity, family: 4 | 6, now: number): void;
    /**
     * A pending SYN was forgotten without an answer (the bound on dials in flight): it left the
     * table with no `closed` event; the app's retransmitted SYN opens a new connection.
     */
    forgotten?(conn: ConnIdentity, now: number): void;
  };

type Method = keyof EventSubscriber;

export class EventHub implements TcpEventSink, UpstreamEvents {
  /** Payload bytes of every pipe, counted as they flow (synfin_tcp_bytes_total): a counter, not an event. */
  readonly bytes: ByteCounters = { bytesClientToUpstream: 0, bytesUpstreamToClient: 0 };
  /**
   * Where a connection's pipe also counts its bytes, by the service index its flow was given when
   * its SYN arrived (FlowTuple.service; synfin_service_bytes_total); null: nowhere.
   */
  serviceBytes: ((service: number) => ByteCounters) | null = null;
  private stateChangeSubs: EventSubscriber[] = [];
  private handshakeSubs: EventSubscriber[] = [];
  private retransmitSubs: EventSubscriber[] = [];
  private resetSubs: EventSubscriber[] = [];
  private dropSubs: EventSubscriber[] = [];
  private rttSubs: EventSubscriber[] = [];
  private slowStartExitSubs: EventSubscriber[] = [];
  private closedSubs: EventSubscriber[] = [];
  private openedSubs: EventSubscriber[] = [];
  private forgottenSubs: EventSubscriber[] = [];
  private upstreamConnectSubs: EventSubscriber[] = [];
  private upstreamOpenedSubs: EventSubscriber[] = [];
  private upstreamEndedSubs: EventSubscriber[] = [];
  private upstreamClosedSubs: EventSubscriber[] = [];

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
  slowStartExit(conn: ConnIdentity, reason: SlowStartExitReason): void {
    const subs = this.slowStartExitSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.slowStartExit!(conn, reason);
  }
  closed(conn: ConnIdentity, reason: CloseReason, now: number): void {
    const subs = this.closedSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.closed!(conn, reason, now);
  }
  opened(conn: ConnIdentity, family: 4 | 6, now: number): void {
    const subs = this.openedSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.opened!(conn, family, now);
  }
  forgotten(conn: ConnIdentity, now: number): void {
    const subs = this.forgottenSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.forgotten!(conn, now);
  }
  upstreamConnect(connId: number, result: UpstreamResult, durationMs: number, now: number): void {
    const subs = this.upstreamConnectSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.upstreamConnect!(connId, result, durationMs, now);
  }
  upstreamOpened(leg: UpstreamLeg, now: number): void {
    const subs = this.upstreamOpenedSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.upstreamOpened!(leg, now);
  }
  upstreamEnded(leg: UpstreamLeg, how: 'fin' | 'reset', now: number): void {
    const subs = this.upstreamEndedSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.upstreamEnded!(leg, how, now);
  }
  upstreamClosed(leg: UpstreamLeg, now: number): void {
    const subs = this.upstreamClosedSubs;
    for (let i = 0; i < subs.length; i++) subs[i]!.upstreamClosed!(leg, now);
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
      ['slowStartExit', this.slowStartExitSubs],
      ['closed', this.closedSubs],
      ['opened', this.openedSubs],
      ['forgotten', this.forgottenSubs],
      ['upstreamConnect', this.upstreamConnectSubs],
      ['upstreamOpened', this.upstreamOpenedSubs],
      ['upstreamEnded', this.upstreamEndedSubs],
      ['upstreamClosed', this.upstreamClosedSubs],
    ];
    for (const [method, list] of table) if (typeof sub[method] === 'function') lists.push(list);
    return lists;
  }
}
