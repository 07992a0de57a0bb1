/**
 * --workers: the option (flag, SYNFIN_WORKERS, config file; 1-64 or auto), `synfin check`, and
 * what the main thread computes without threads: each worker's share of the global limits, the
 * merge of the workers' metrics, and the merge of their connection tables (ids naming the worker).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, MAX_WORKERS, resolveConfig } from '../../src/config.js';
import { globalId, localAfter, mergePages } from '../../src/workers/connections.js';
import { perWorkerOpened, workerFamilies, workerShare, type Family } from '../../src/workers/merge.js';
import { mergeHistory } from '../../src/workers/history.js';
import type { HistoryRecord } from '../../src/observability/history.js';
import type { ConnectionRow } from '../../src/observability/table.js';

const BIN = path.join(import.meta.dirname, '../../bin/synfin.js');

describe('the --workers option', () => {
  it('is 1 by default: the single-thread path', () => {
    expect(DEFAULT_CONFIG.workers).toBe(1);
    expect(resolveConfig({}, {}).workers).toBe(1);
  });

  it('is read from the flag, SYNFIN_WORKERS and the config file, in that order', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-workers-'));
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, 'workers: 3\n');
    expect(resolveConfig({}, {}, file).workers).toBe(3);
    expect(resolveConfig({}, { SYNFIN_WORKERS: '4' }, file).workers).toBe(4);
    expect(resolveConfig({ workers: '2' }, { SYNFIN_WORKERS: '4' }, file).workers).toBe(2);
  });

  it('takes auto as the cores this process may use, at most 64', () => {
    expect(resolveConfig({ workers: 'auto' }, {}).workers).toBe(Math.min(MAX_WORKERS, os.availableParallelism()));
    expect(resolveConfig({}, { SYNFIN_WORKERS: 'AUTO' }).workers).toBeGreaterThanOrEqual(1);
  });

  it.each([['0'], ['65'], ['1.5'], ['two'], ['-1'], [' ']])('refuses %j with an error naming the option and the range', (value) => {
    expect(() => resolveConfig({ workers: value }, {})).toThrow(/--workers: .* is not a number of workers \(an integer 1-64, or auto\)/);
  });

  it('names the variable or the file when the bad value came from there', () => {
    expect(() => resolveConfig({}, { SYNFIN_WORKERS: '100' })).toThrow(/^SYNFIN_WORKERS: "100" is not a number of workers/);
  });

  it('is validated by synfin check, which says how many workers it accepted', () => {
    const bad = spawnSync(process.execPath, [BIN, 'check', '--workers', '0'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toMatch(/^synfin: --workers: "0" is not a number of workers/);
    const good = spawnSync(process.execPath, [BIN, 'check', '--workers', '8'], { encoding: 'utf8' });
    expect(good.status, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/workers 8/);
  });
});

describe('each worker\'s share of the global limits', () => {
  it('divides --max-connections, --syn-backlog, --max-time-wait, the memory budget, --history and --capture-buffer N ways, rounding up', () => {
    const c = { ...DEFAULT_CONFIG, maxConnections: 100_001, synBacklog: 1024, maxTimeWait: 5, workers: 3 };
    const s = workerShare(c, 3, 256 * 1024 * 1024);
    expect(s.maxConnections).toBe(33_334);
    expect(s.synBacklog).toBe(342);
    expect(s.maxTimeWait).toBe(2);
    expect(s.memoryLimit).toBe(Math.ceil((256 * 1024 * 1024) / 3));
    expect(s.history).toBe(3334);
    expect(s.captureBuffer).toBe(0);
    expect(workerShare({ ...c, captureBuffer: 64 * 1024 * 1024 }, 2, 1 << 20).captureBuffer).toBe(32 * 1024 * 1024);
    // A ring is never smaller than its minimum (256 KiB).
    expect(workerShare({ ...c, captureBuffer: 256 * 1024 }, 3, 1 << 20).captureBuffer).toBe(256 * 1024);
    // Everything else is the same in every worker.
    const zero = { maxConnections: 0, synBacklog: 0, maxTimeWait: 0, memoryLimit: 0, history: 0, captureBuffer: 0 };
    expect({ ...s, ...zero }).toEqual({ ...c, ...zero });
  });
});

const fam = (name: string, type: string, values: Family['values']): Family => ({ name, help: name, type, values, aggregator: 'sum' });

describe('the merge of the workers\' metrics', () => {
  const worker = (opened: number, age: number): Family[] => [
    fam('process_cpu_user_seconds_total', 'counter', [{ labels: {}, value: 9 }]),
    fam('synfin_build_info', 'gauge', [{ labels: { version: '0.1.0', node: 'v20' }, value: 1 }]),
    fam('synfin_tcp_connections_opened_total', 'counter', [{ labels: { family: 'ipv4' }, value: opened }]),
    fam('synfin_tcp_oldest_connection_age_seconds', 'gauge', [{ labels: { state: 'ESTABLISHED' }, value: age }]),
    fam('synfin_tcp_connections', 'gauge', [{ labels: { state: 'LISTEN' }, value: 1 }, { labels: { state: 'ESTABLISHED' }, value: opened }]),
  ];

  it('keeps only synfin_* families the main thread does not give itself, summing all but the oldest ages (max)', () => {
    const w = workerFamilies(worker(3, 7), true);
    expect(w.map((f) => f.name)).toEqual(['synfin_tcp_connections_opened_total', 'synfin_tcp_oldest_connection_age_seconds', 'synfin_tcp_connections']);
    expect(w.map((f) => f.aggregator)).toEqual(['sum', 'max', 'sum']);
  });

  it('counts the one wildcard listener once', () => {
    expect(workerFamilies(worker(3, 7), false)[2]!.values).toEqual([{ labels: { state: 'ESTABLISHED' }, value: 3 }]);
  });

  it('gives each worker\'s opened connections under its index', () => {
    const f = perWorkerOpened([worker(3, 1), null, worker(5, 2)]);
    expect(f.values).toEqual([
      { labels: { worker: '0' }, value: 3 },
      { labels: { worker: '2' }, value: 5 },
    ]);
  });
});

const row = (id: number): ConnectionRow => ({ id }) as ConnectionRow;

describe('the merge of the workers\' connection tables', () => {
  it('makes ids global (local × N + worker) and finds each worker\'s place after a global cursor', () => {
    expect(globalId(5, 1, 3)).toBe(16);
    // Rows of worker 1 (of 3) after global id 16 are those with a local id above 5.
    expect(localAfter(16, 1, 3)).toBe(5);
    expect(localAfter(16, 2, 3)).toBe(4);
    expect(localAfter(16, 0, 3)).toBe(5);
    expect(localAfter(0, 2, 3)).toBe(0);
    for (let after = 0; after < 40; after++) {
      for (let i = 0; i < 3; i++) {
        for (let local = 1; local < 15; local++) expect(globalId(local, i, 3) > after).toBe(local > localAfter(after, i, 3));
      }
    }
  });

  it('merges pages by global id, cut at the limit, and says when more follow', () => {
    const a = { rows: [row(1), row(2), row(3)], more: true };
    const b = { rows: [row(1)], more: false };
    const page = mergePages([a, b], 2, 3);
    expect(page.rows.map((r) => r.id)).toEqual([2, 3, 4]);
    expect(page.more).toBe(true);
    expect(mergePages([{ rows: [row(1)], more: false }, null], 2, 3)).toEqual({ rows: [{ id: 2 }], more: false });
  });
});

describe('/api/history merged from the workers', () => {
  // Each worker answers newest first in its recorder's order; records closed in the same
  // millisecond keep that order, whatever their ids.
  const rec = (id: number, closedAt: string): HistoryRecord => ({ id, closedAt }) as unknown as HistoryRecord;
  const worker0 = [rec(10, '2026-12-07T06:00:00.003Z'), rec(8, '2026-12-07T06:00:00.002Z'), rec(9, '2026-12-07T06:00:00.002Z'), rec(7, '2026-12-07T06:00:00.001Z')];
  const worker1 = [rec(5, '2026-12-07T06:00:00.002Z'), rec(4, '2026-12-07T06:00:00.001Z')];

  it('puts the later close first, the higher global id first within a millisecond, and keeps each worker\'s own order', () => {
    const merged = mergeHistory([worker0, worker1], 2, 10);
    expect(merged.map((r) => [r.id, r.closedAt.slice(-4)])).toEqual([
      [20, '003Z'],
      [16, '002Z'],
      [18, '002Z'],
      [11, '002Z'],
      [14, '001Z'],
      [9, '001Z'],
    ]);
  });

  it('gives as a short page the first records of a longer one, whatever the limit', () => {
    const full = mergeHistory([worker0, worker1], 2, 100);
    for (let limit = 1; limit <= 6; limit++) {
      expect(mergeHistory([worker0.slice(0, limit), worker1.slice(0, limit)], 2, limit)).toEqual(full.slice(0, limit));
    }
  });

  it('leaves out a worker that did not answer', () => {
    expect(mergeHistory([null, worker1], 2, 10).map((r) => r.id)).toEqual([11, 9]);
  });
});
