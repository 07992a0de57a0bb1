/**
 * /api/connections with --workers N: each worker answers a slice of its own table (worker side),
 * and the main thread merges the slices into one page (main side). A connection's id in the API
 * names its worker: global id = local id × N + worker index, so ids stay numeric, unique and in
 * each worker's opening order, and the page is ordered by the global id.
 */
import { pageOfRows, type ConnectionRow } from '../observability/table.js';
import type { Synfin } from '../runtime.js';
import type { ConnectionsAnswer, ConnectionsQuery } from './protocol.js';

/** Connections examined per synchronous slice before a turn of the worker's loop (packets move between). */
const SLICE_EXAMINED = 5_000;

/** Worker side: up to `limit` rows after `afterId` (local ids), built in slices. */
export async function answerConnections(synfin: Synfin, q: ConnectionsQuery): Promise<ConnectionsAnswer> {
  const source = synfin.connections;
  await source.refreshKernel(q.first ? 100 : 1000);
  const rows: ConnectionRow[] = [];
  let after = q.afterId;
  for (;;) {
    const pq = { filter: q.filter, afterId: after, limit: q.limit - rows.length, maxExamined: SLICE_EXAMINED };
    const p = source.page?.(pq) ?? pageOfRows(source.rows(), pq);
    if (p.rows.length > 0) {
      await source.resolveAppProcesses(p.rows);
      for (const r of p.rows) rows.push(r);
    }
    if (p.resumeAfterId !== null) after = p.resumeAfterId;
    else return { rows, more: p.more };
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The global id of worker `index`'s local id `local`, N workers. */
export function globalId(local: number, index: number, n: number): number {
  return local * n + index;
}

/** Worker `index`'s rows after global id `after` are those with a local id above this. */
export function localAfter(after: number, index: number, n: number): number {
  return Math.max(0, Math.floor((after - index) / n));
}

/**
 * Main side: one page out of the workers' answers (each in its local id order, at most `limit`
 * rows): ids made global, merged by global id, cut at `limit`. `more`: a row follows the page.
 */
export function mergePages(answers: ReadonlyArray<ConnectionsAnswer | null>, n: number, limit: number): { rows: ConnectionRow[]; more: boolean } {
  const all: ConnectionRow[] = [];
  let more = false;
  answers.forEach((a, index) => {
    if (a === null) return;
    for (const r of a.rows) all.push({ ...r, id: globalId(r.id, index, n) });
    if (a.more) more = true;
  });
  all.sort((x, y) => x.id - y.id);
  if (all.length > limit) {
    all.length = limit;
    more = true;
  }
  return { rows: all, more };
}
