/**
 * /api/history and /api/events with --workers N: each worker keeps its own flight recorder and
 * event hub; the main thread merges the recorders' answers newest first and relays the workers'
 * transitions to its /api/events readers. Ids are global, as in /api/connections (local × N + index).
 */
import type { HistoryQuery, HistoryRecord } from '../observability/history.js';
import type { Synfin } from '../runtime.js';
import { STATE_NAMES, type State } from '../tcp/state.js';
import type { ConnIdentity } from '../tcp/events.js';
import { globalId } from './connections.js';
import type { TransitionEvent } from '../http/app.js';

const SLICE_EXAMINED = 5_000;

/** Worker side: up to `limit` matching records, newest first (the recorder's walk, in slices). */
export async function answerHistory(synfin: Synfin, q: HistoryQuery, limit: number): Promise<HistoryRecord[]> {
  const ring = synfin.history.ring;
  const out: HistoryRecord[] = [];
  let before = Infinity;
  for (;;) {
    const p = ring.query(q, before, limit - out.length, SLICE_EXAMINED);
    for (const r of p.records) out.push(r);
    if (p.next < 0 || out.length >= limit) return out;
    before = p.next;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Main side: the workers' records with global ids, newest closed first, at most `limit`. Each
 * worker's answer is already newest first (its recorder's order), and a k-way merge keeps that
 * order within a worker, so the first `limit` of a merge of longer answers are this merge of
 * their first `limit` (a page and a longer page agree, ties in closedAt included). Across
 * workers, the later closedAt first; on a tie (the same millisecond), the higher id.
 */
export function mergeHistory(answers: ReadonlyArray<HistoryRecord[] | null>, n: number, limit: number): HistoryRecord[] {
  const heads = answers.map(() => 0);
  const out: HistoryRecord[] = [];
  while (out.length < limit) {
    let best = -1;
    let bestRecord: HistoryRecord | null = null;
    let bestId = 0;
    answers.forEach((a, index) => {
      const r = a?.[heads[index]!];
      if (r === undefined) return;
      const id = globalId(r.id, index, n);
      if (bestRecord === null || r.closedAt > bestRecord.closedAt || (r.closedAt === bestRecord.closedAt && id > bestId)) {
        best = index;
        bestRecord = r;
        bestId = id;
      }
    });
    if (bestRecord === null) break;
    heads[best]!++;
    out.push({ ...(bestRecord as HistoryRecord), id: bestId });
  }
  return out;
}

/** One transition as a worker relays it (addresses included: the main thread redacts per reader). */
export type RelayedTransition = Omit<TransitionEvent, 'dropped'>;

/** Most transitions a worker relays per turn of its loop; beyond, they are counted as dropped. */
const MAX_BATCH = 10_000;

/**
 * Worker side of /api/events: while the main thread has readers, every transition is described
 * (as the single-thread stream does) and sent in one batch per turn of the loop, not one message
 * per transition (BENCHMARKS.md "Past one core": 0.5-1.5 µs per record in batches of 64).
 */
export class TransitionRelay {
  private unsubscribe: (() => void) | null = null;
  private batch: RelayedTransition[] = [];
  private dropped = 0;
  private scheduled = false;

  constructor(
    private readonly synfin: Synfin,
    private readonly index: number,
    private readonly n: number,
    private readonly send: (batch: RelayedTransition[], dropped: number) => void,
  ) {}

  start(): void {
    if (this.unsubscribe !== null) return;
    this.unsubscribe = this.synfin.events.subscribe({
      stateChange: (conn: ConnIdentity, from: State, to: State, now: number, sinceMs: number) => this.note(conn, from, to, now, sinceMs),
    });
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  private note(conn: ConnIdentity, from: State, to: State, now: number, sinceMs: number): void {
    if (this.batch.length >= MAX_BATCH) {
      this.dropped++;
      return;
    }
    const where = this.synfin.connections.describe(conn);
    this.batch.push({
      id: globalId(conn.id, this.index, this.n),
      client: where?.client ?? null,
      destination: where?.destination ?? null,
      service: where?.service ?? this.synfin.connections.serviceOf(conn),
      from: STATE_NAMES[from]!,
      to: STATE_NAMES[to]!,
      secondsInFrom: Math.max(0, now - sinceMs) / 1000,
    });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const batch = this.batch;
    const dropped = this.dropped;
    this.batch = [];
    this.dropped = 0;
    if (batch.length > 0 || dropped > 0) this.send(batch, dropped);
  };
}
