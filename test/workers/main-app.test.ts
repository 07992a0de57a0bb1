/**
 * The --workers main thread's HTTP surface (src/workers/app.ts) against fake workers, without
 * threads or a TUN device: it serves every route the single-thread API serves, the live page's
 * summary is the workers' parts merged, and a live capture writes every worker's records in time
 * order. The real threads are in workers.test.ts.
 */
import type { FastifyInstance } from 'fastify';
import { apiParts, buildApi } from '../helpers/api-app.js';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/config.js';
import fc from 'fast-check';
import { captureRoutes, LiveMerge, mergePcapRecords } from '../../src/http/capture.js';
import { livePage } from '../../src/http/page.js';
import { createSummary, type SummaryParts } from '../../src/observability/summary.js';
import { CaptureControl } from '../../src/stack/capture.js';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';
import { State } from '../../src/tcp/state.js';
import { buildMainApp, type MainAppOptions } from '../../src/workers/app.js';
import type { LiveRecords } from '../../src/workers/protocol.js';
import { identity } from '../helpers/identity.js';

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** Method and full path of every route, from Fastify's printed radix tree (a child's label continues its parent's). */
function routesOf(app: FastifyInstance): string[] {
  const out: string[] = [];
  const prefix: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^([│ ]*)[└├]── (\S+)(?: \(([^)]*)\))?/.exec(line);
    if (m === null) continue;
    const depth = m[1]!.length / 4;
    prefix[depth] = (depth > 0 ? prefix[depth - 1]! : '') + m[2]!;
    prefix.length = depth + 1;
    for (const method of (m[3] ?? '').split(', ').filter((x) => x !== '' && x !== 'HEAD')) out.push(`${method} ${prefix[depth]}`);
  }
  return out.sort();
}

/** One pcap record: its time (µs) and a 4-byte payload naming it. */
function pcapRecord(timeUs: number, tag: number): Buffer {
  const b = Buffer.alloc(16 + 4);
  b.writeUInt32LE(Math.floor(timeUs / 1e6), 0);
  b.writeUInt32LE(timeUs % 1e6, 4);
  b.writeUInt32LE(4, 8);
  b.writeUInt32LE(4, 12);
  b.writeUInt32LE(tag, 16);
  return b;
}

/** The tags of a run of pcap records, in order. */
function tagsOf(records: Buffer): number[] {
  const tags: number[] = [];
  for (let off = 0; off < records.length; off += 16 + records.readUInt32LE(off + 8)) tags.push(records.readUInt32LE(off + 16));
  return tags;
}

function singleThreadApp(): FastifyInstance {
  const parts = apiParts();
  const { hub, source, clock } = parts;
  const control = new CaptureControl({ setCapture: () => {} }, { bufferBytes: 0, snaplen: 128 });
  const app = buildApi(parts, {
    history: null,
    plugins: [livePage(createSummary(hub, source, clock)), captureRoutes({ control })],
  });
  cleanup.push(() => app.close());
  return app;
}

function mainApp(over: Partial<MainAppOptions> = {}): FastifyInstance {
  const app = buildMainApp({
    config: { ...DEFAULT_CONFIG, workers: 2 },
    n: 2,
    isReady: () => true,
    metrics: async () => ({ body: '', contentType: 'text/plain' }),
    connections: async (q) => q.map(() => ({ rows: [], more: false })),
    history: async () => [[], []],
    historyCapacity: 0,
    summaries: async () => [null, null],
    subscribeTransitions: () => () => {},
    capture: async () => [null, null],
    live: { open: () => {}, take: async () => [null, null], close: () => {} },
    pcap: async () => null,
    ...over,
  });
  cleanup.push(() => app.close());
  return app;
}

describe('the --workers main thread\'s API', () => {
  it('serves every route the single-thread API serves', async () => {
    const single = singleThreadApp();
    const main = mainApp();
    await Promise.all([single.ready(), main.ready()]);
    const want = routesOf(single);
    expect(want).toEqual(expect.arrayContaining(['GET /', 'GET /api/summary', 'GET /api/capture.pcap', 'GET /api/connections/:id/pcap', 'POST /api/capture']));
    expect(routesOf(main)).toEqual(expect.arrayContaining(want));
  });

  it('answers /api/summary with the workers\' parts merged, leaving out a worker that did not answer', async () => {
    const clock = new ManualClock(2_000_000);
    const parts: SummaryParts[] = [];
    for (const n of [3, 4]) {
      const hub = new EventHub();
      const samples = Array.from({ length: n }, () => ({ state: State.ESTABLISHED, createdAt: 1_999_000, lastActivityAt: 1_999_000, waitingOn: null, waitingSince: 0 }));
      const summary = createSummary(hub, { rows: () => [], forEachSample: (visit) => samples.forEach(visit) }, clock, { minIntervalMs: 0 });
      hub.stateChange(identity(1, 0), State.SYN_RECEIVED, State.ESTABLISHED, 1_999_000, 1_999_000);
      parts.push(summary.parts());
    }
    const asked: Array<number | undefined> = [];
    const app = mainApp({
      summaries: async (since) => {
        asked.push(since);
        return [parts[0]!, parts[1]!, null];
      },
    });
    const res = await app.inject({ url: '/api/summary?since=1990' });
    expect(res.statusCode).toBe(200);
    const body = res.json() as { states: Record<string, number>; transitions: Record<string, number> };
    expect(body.states).toMatchObject({ LISTEN: 1, ESTABLISHED: 7 });
    expect(body.transitions).toEqual({ 'SYN_RECEIVED>ESTABLISHED': 2 });
    expect(asked).toEqual([1990]);
    const page = await app.inject({ url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
  });

  it('streams a live capture of every worker\'s ring in time order, and closes its taps when done', async () => {
    const events: string[] = [];
    let round = 0;
    // Worker 0 and worker 1 each give records in their own time order; the file interleaves them.
    // Worker 0 took its first records at 35 µs, so worker 1's record of 40 waits for the next poll.
    const rounds: Array<Array<LiveRecords | null>> = [
      [
        { records: Buffer.concat([pcapRecord(10, 1), pcapRecord(30, 3)]), takenAtUs: 35 },
        { records: Buffer.concat([pcapRecord(20, 2), pcapRecord(40, 4)]), takenAtUs: 45 },
      ],
      [null, { records: pcapRecord(50, 5), takenAtUs: 60 }],
    ];
    const app = mainApp({
      live: {
        open: (tap, service) => events.push(`open ${tap} ${service}`),
        take: async (tap) => {
          const got = rounds[round++] ?? [null, null];
          events.push(`take ${tap}`);
          return got;
        },
        close: (tap) => events.push(`close ${tap}`),
      },
    });
    const res = await app.inject({ url: '/api/capture.pcap?seconds=0.35&service=db' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/vnd.tcpdump.pcap');
    const file = res.rawPayload;
    expect(file.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(tagsOf(file.subarray(24))).toEqual([1, 2, 3, 4, 5]);
    expect(events[0]).toBe('open 1 db');
    expect(events.at(-1)).toBe('close 1');
    expect(events.filter((e) => e.startsWith('take')).length).toBeGreaterThanOrEqual(2);
  });

  it('refuses a live capture to a client that may not see addresses', async () => {
    const app = mainApp({ config: { ...DEFAULT_CONFIG, workers: 2, apiAddresses: 'none' } });
    const res = await app.inject({ url: '/api/capture.pcap?seconds=1' });
    expect(res.statusCode).toBe(403);
  });
});

describe('mergePcapRecords', () => {
  it('puts several runs of records into one run in time order, each run keeping its own order', () => {
    const a = Buffer.concat([pcapRecord(5, 1), pcapRecord(5, 2), pcapRecord(2_000_001, 6)]);
    const b = Buffer.concat([pcapRecord(3, 10), pcapRecord(5, 11), pcapRecord(1_000_000, 12)]);
    const merged = mergePcapRecords([a, new Uint8Array(0), b]);
    expect(merged.length).toBe(a.length + b.length);
    expect(tagsOf(merged)).toEqual([10, 1, 2, 11, 12, 6]);
    expect(tagsOf(mergePcapRecords([b]))).toEqual([10, 11, 12]);
    expect(mergePcapRecords([]).length).toBe(0);
  });
});

describe('LiveMerge', () => {
  it('holds a record newer than some worker\'s take until that worker has taken past it', () => {
    const merge = new LiveMerge();
    // Poll 1: worker A took at 100 µs, worker B later, at 200 µs, and has a record of 150.
    const first = merge.next([{ records: pcapRecord(90, 1), takenAtUs: 100 }, { records: pcapRecord(150, 3), takenAtUs: 200 }], false);
    expect(tagsOf(first!)).toEqual([1]);
    // Poll 2: A's record of 120 came after its first take; it goes before B's 150.
    const second = merge.next([{ records: pcapRecord(120, 2), takenAtUs: 300 }, { records: Buffer.alloc(0), takenAtUs: 310 }], false);
    expect(tagsOf(second!)).toEqual([2, 3]);
    // No worker answered: nothing is known, nothing goes out until the last poll.
    expect(merge.next([{ records: pcapRecord(400, 4), takenAtUs: 500 }, { records: pcapRecord(600, 5), takenAtUs: 700 }], false)).not.toBeNull();
    expect(merge.next([null, null], false)).toBeNull();
    expect(tagsOf(merge.next([null, null], true)!)).toEqual([5]);
    expect(merge.next([null, null], true)).toBeNull();
  });

  it('writes every record once and in time order, whatever the workers\' take instants (property)', () => {
    // Up to 4 workers and 12 polls; each worker's records and take instants increase, its records
    // of a poll lying between its previous take and this one.
    const worker = fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 4 })), { minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(fc.array(worker, { minLength: 1, maxLength: 4 }), (workers) => {
        const merge = new LiveMerge();
        const clock = workers.map(() => 0);
        const polls = Math.max(...workers.map((w) => w.length));
        const out: Buffer[] = [];
        let written = 0;
        let tag = 0;
        for (let p = 0; p < polls; p++) {
          const answers = workers.map((w, i) => {
            const step = w[p];
            if (step === undefined) return null;
            const [advance, count] = step;
            const records: Buffer[] = [];
            for (let r = 0; r < count; r++) records.push(pcapRecord(clock[i]! + Math.floor((advance * r) / Math.max(count, 1)), ++tag));
            clock[i]! += advance;
            written += count;
            return { records: Buffer.concat(records), takenAtUs: clock[i]! };
          });
          const got = merge.next(answers, p === polls - 1);
          if (got !== null) out.push(got);
        }
        const file = Buffer.concat(out);
        const times: number[] = [];
        for (let off = 0; off < file.length; off += 16 + file.readUInt32LE(off + 8)) times.push(file.readUInt32LE(off) * 1e6 + file.readUInt32LE(off + 4));
        expect(times.length).toBe(written);
        expect(new Set(tagsOf(file)).size).toBe(written);
        expect([...times].sort((a, b) => a - b)).toEqual(times);
      }),
      { numRuns: 300 },
    );
  });
});
