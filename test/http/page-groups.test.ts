/**
 * The live page's grouping of waiting connections by service and by the process holding them,
 * and the text naming that process (src/http/page/app.js, a plain module the browser loads).
 */
import { describe, expect, it } from 'vitest';

interface Row {
  id: number;
  service?: string;
  waitingOn: string | null;
  waitingSeconds: number | null;
  appProcess: { pid: number; command: string; fd: number } | null;
  appProcessSource: string;
  state?: string;
  ageSeconds?: number;
  stateAgeSeconds?: number;
}
interface Group {
  service: string;
  count: number;
  oldestSeconds: number;
  processes: Array<{ key: string; pid: number | null; command: string | null; source: string; count: number; oldestSeconds: number; fds: number[] }>;
}
interface PageModule {
  heldBy(r: Row): string;
  groupWaiting(rows: Row[]): Group[];
  stateTimes(row: Row, record: unknown, nowMs: number): Array<{ state: string; at: number }>;
}
const pageModulePath = '../../src/http/page/app.js';
const page = (await import(pageModulePath)) as PageModule;

const held = (id: number, pid: number, fd: number, waited: number, service?: string): Row => ({
  id,
  service,
  waitingOn: 'app',
  waitingSeconds: waited,
  appProcess: { pid, command: pid === 4242 ? 'python3' : 'node', fd },
  appProcessSource: 'kernel',
});

describe('live page: waiting connections by service and process', () => {
  it('names the process, its fd and how long the connection has waited', () => {
    expect(page.heldBy(held(1, 4242, 7, 720))).toBe('held by pid 4242 python3, fd 7, for 12 min 0 s');
    expect(page.heldBy({ id: 2, waitingOn: 'app', waitingSeconds: 3, appProcess: null, appProcessSource: 'not_permitted' })).toMatch(/^process unknown \(not permitted: another uid/);
    expect(page.heldBy({ id: 3, waitingOn: null, waitingSeconds: null, appProcess: { pid: 9, command: 'x', fd: 3 }, appProcessSource: 'kernel' })).toBe('held by pid 9 x, fd 3');
  });

  it('groups by service (other when unnamed), then by process, the largest first, with the oldest wait of each', () => {
    const rows: Row[] = [
      held(1, 4242, 7, 30, 'default/payments'),
      held(2, 4242, 8, 700, 'default/payments'),
      held(3, 77, 5, 10, 'default/payments'),
      held(4, 4242, 9, 5),
      { id: 5, waitingOn: 'app', waitingSeconds: 50, appProcess: null, appProcessSource: 'not_visible' },
      held(6, 4242, 10, 60, 'default/payments'),
    ];
    const groups = page.groupWaiting(rows);
    expect(groups.map((g) => [g.service, g.count, g.oldestSeconds])).toEqual([
      ['default/payments', 4, 700],
      ['other', 2, 50],
    ]);
    expect(groups[0]!.processes.map((p) => [p.pid, p.command, p.count, p.fds, p.oldestSeconds])).toEqual([
      [4242, 'python3', 3, [7, 8, 10], 700],
      [77, 'node', 1, [5], 10],
    ]);
    // Unknown processes group by why they are unknown.
    expect(groups[1]!.processes.map((p) => [p.pid, p.source, p.count])).toEqual([
      [null, 'not_visible', 1],
      [4242, 'kernel', 1],
    ]);
  });

  it("a connection's states with times: the flight record's once closed, else opened and the current state from the row", () => {
    const now = 1_000_000;
    const row: Row = { id: 1, waitingOn: 'app', waitingSeconds: 20, appProcess: null, appProcessSource: 'pending', state: 'FIN_WAIT_2', ageSeconds: 60, stateAgeSeconds: 20 };
    expect(page.stateTimes(row, null, now)).toEqual([
      { state: 'opened', at: now - 60_000 },
      { state: 'FIN_WAIT_2', at: now - 20_000 },
      { state: 'waiting on the app', at: now - 20_000 },
    ]);
    // The shape of an /api/history record's states: ISO times.
    const record = { id: 1, states: [{ state: 'SYN_RECEIVED', at: '1970-01-01T00:00:00.005Z' }, { state: 'ESTABLISHED', at: '1970-01-01T00:00:00.010Z' }] };
    expect(page.stateTimes(row, record, now)).toEqual([
      { state: 'SYN_RECEIVED', at: 5 },
      { state: 'ESTABLISHED', at: 10 },
    ]);
  });
});
