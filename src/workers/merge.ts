/**
 * What the main thread of `--workers N` (src/workers/supervisor.ts) computes from its workers:
 * each worker's share of the global limits, and one /metrics out of N registries. Pure functions,
 * so tests check them without threads.
 */
import type { Config } from '../config.js';
import { CAPTURE_MIN_BYTES } from '../stack/capture.js';

/**
 * The per-worker config: the limits that are global in the single-thread path
 * (--max-connections, --syn-backlog, --max-time-wait, --memory-limit) divided N ways, rounded up
 * (a worker's share is exact and needs no shared counter on the hot path; BENCHMARKS.md "Past one
 * core"), and --history and --capture-buffer (memory) too. The sum can exceed the figure asked
 * for by at most N − 1. `memoryLimit` is the global
 * budget in force (the option's, or the default read from the cgroup by the main thread).
 */
export function workerShare(config: Config, n: number, memoryLimit: number): Config {
  const share = (v: number): number => Math.ceil(v / n);
  return {
    ...config,
    maxConnections: share(config.maxConnections),
    synBacklog: share(config.synBacklog),
    maxTimeWait: share(config.maxTimeWait),
    memoryLimit: share(memoryLimit),
    // Not limits, but memory: the flight recorders (~175 bytes a record, allocated at start)
    // together keep --history records, the capture rings together --capture-buffer bytes (each at
    // least the ring's minimum).
    history: share(config.history),
    captureBuffer: config.captureBuffer === 0 ? 0 : Math.max(CAPTURE_MIN_BYTES, share(config.captureBuffer)),
  };
}

/** Families a worker exports that the main thread gives once itself (process-wide facts). */
const MAIN_THREAD_FAMILIES = new Set(['synfin_build_info', 'synfin_ready', 'synfin_ephemeral_ports']);

/** Gauges of "the oldest" (an age): the oldest over all workers is the largest of theirs. */
const MAX_FAMILIES = new Set([
  'synfin_tcp_oldest_connection_age_seconds',
  'synfin_connections_oldest_waiting_seconds',
  'synfin_connections_oldest_idle_seconds',
  'synfin_service_oldest_waiting_seconds',
]);

/** A metric family as prom-client's getMetricsAsJSON gives it (and its AggregatorRegistry.aggregate takes it). */
export interface Family {
  name: string;
  help: string;
  type: string;
  aggregator?: string;
  values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
}

/**
 * One worker's families as they enter the merge: only synfin_* ones (prom-client's process and
 * Node.js metrics describe the process, and the main thread has those), without the main thread's
 * own, each with how it merges (`max` for the oldest-age gauges; `sum` for the rest: counters,
 * histograms' buckets, sums and counts, and gauges that count things or bytes).
 */
export function workerFamilies(families: readonly Family[], keepListen: boolean): Family[] {
  const out: Family[] = [];
  for (const f of families) {
    if (!f.name.startsWith('synfin_') || MAIN_THREAD_FAMILIES.has(f.name)) continue;
    // synfin_tcp_connections{state="LISTEN"} is the one wildcard listener (always 1): every worker
    // has one, the proxy still listens once; the first worker that answered stands for all.
    const values = f.name === 'synfin_tcp_connections' && !keepListen ? f.values.filter((v) => v.labels.state !== 'LISTEN') : f.values;
    out.push({ ...f, values, aggregator: MAX_FAMILIES.has(f.name) ? 'max' : 'sum' });
  }
  return out;
}

/** synfin_worker_connections_opened_total: each worker's share of the connections (how evenly the kernel spread flows). */
export function perWorkerOpened(perWorker: ReadonlyArray<readonly Family[] | null>): Family {
  const values: Family['values'] = [];
  perWorker.forEach((families, worker) => {
    if (families === null) return;
    const opened = families.find((f) => f.name === 'synfin_tcp_connections_opened_total');
    let total = 0;
    for (const v of opened?.values ?? []) total += v.value;
    values.push({ labels: { worker: String(worker) }, value: total });
  });
  return {
    name: 'synfin_worker_connections_opened_total',
    help: 'Connections opened by each worker thread (--workers): the kernel spreads flows over the queues by a hash of their addresses.',
    type: 'counter',
    aggregator: 'sum',
    values,
  };
}
