/**
 * `synfin run --workers N` (N > 1): the main thread of the multi-queue model (BENCHMARKS.md "Past
 * one core"). It opens the TUN device with N queues (IFF_MULTI_QUEUE), configures it once, gives
 * up its capabilities (the re-exec hands over N fds), answers HTTP (Fastify: /metrics merged from
 * every worker, the connection table merged, readiness when every worker is ready) and does no
 * packet work. Each queue carries one worker thread running a whole stack (worker.ts).
 *
 * The kernel keeps a flow on one queue for its whole life (tun_automq_select_queue: a flow table
 * learnt from the queue each packet is written on; synfin writes a flow's packets on the queue it
 * read them from) as long as the number of queues does not change: so the main thread holds every
 * queue's fd for the process's life, and a worker that dies is replaced by a new one adopting the
 * same queue (its packets wait in the queue meanwhile; TCP retransmits what was lost).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import client from 'prom-client';
import type { Config } from '../config.js';
import { ConfigError } from '../errors.js';
import { createLogger } from '../observability/log.js';
import { ephemeralPortCount, registerProcessMetrics } from '../observability/process-metrics.js';
import { defaultMemoryLimit } from '../tcp/memory-budget.js';
import { capabilitiesNeeded, holdsCapabilities, ownCapabilities, reexecWithoutCapabilities, takeInheritedQueues } from '../tun/caps.js';
import { configureDevice } from '../tun/configure.js';
import { Tun } from '../tun/index.js';
import { buildMainApp } from './app.js';
import { perWorkerOpened, workerFamilies, workerShare } from './merge.js';
import type { CaptureStatus, ConnectionsAnswer, LiveRecords, ConnectionsQuery, MainToWorker, PcapAnswer, WorkerData, WorkerMetrics, WorkerToMain } from './protocol.js';
import type { HistoryQuery, HistoryRecord } from '../observability/history.js';
import type { RelayedTransition } from './history.js';
import type { SummaryParts } from '../observability/summary.js';
import { installStopSignals } from '../stop-signals.js';

const VERSION = '0.1.0';

/** How long the main thread waits for a worker's answer (metrics, a table slice) before going without it. */
const REQUEST_TIMEOUT_MS = 5_000;

export interface WorkersOptions {
  logger?: Logger;
  /** Move the device into this network namespace after opening its queues (tests, the demo's way). */
  netns?: string;
  /** Least privilege as `synfin run` does it (src/tun/caps.ts), with N fds across the exec. */
  dropCapabilities?: boolean;
  installSignalHandlers?: boolean;
  /** The worker's script (default: worker.js beside this file, i.e. in dist/). */
  workerScript?: string;
  /** How long after a failed replacement the next try comes (ms; default 5000). */
  replaceRetryMs?: number;
}

export interface Workers {
  config: Config;
  listenUrl: string;
  app: FastifyInstance;
  /** The queues, kept open for the process's life (index = worker index). */
  queues: readonly Tun[];
  /** The worker threads now (a replaced worker's slot holds its replacement). */
  threads(): readonly Worker[];
  /** Workers replaced after an unexpected exit. */
  restarts(): number;
  shutdown(reason?: string): Promise<void>;
  /** End the shutdown's grace period in every worker now (a second SIGTERM). */
  endGrace(reason?: string): void;
}

interface Slot {
  index: number;
  worker: Worker;
  ready: boolean;
  /** Requests waiting for this worker's reply, by sequence number. */
  pending: Map<number, (body: unknown) => void>;
  startedAt: number;
  exited: boolean;
}

function readSmallFile(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Opens (or, after the capability drop's exec, adopts) the N queues and configures the device once. */
function openQueues(config: Config, n: number, opts: WorkersOptions): { queues: Tun[]; changes: string[] } {
  const inherited = opts.dropCapabilities === true ? takeInheritedQueues() : null;
  if (inherited !== null) {
    if (inherited.fds.length !== n) throw new ConfigError(`--workers ${n}: ${inherited.fds.length} queues were handed over`);
    return { queues: inherited.fds.map((fd) => Tun.open({ name: config.tun, vnetHdr: true, fd })), changes: inherited.changes };
  }
  // Every queue is attached before the device moves (TUNSETIFF finds the name in the opener's namespace).
  const queues = Tun.openQueues({ name: config.tun, vnetHdr: true }, n);
  try {
    if (opts.netns !== undefined) queues[0]!.moveToNetns(opts.netns);
    return { queues, changes: configureDevice(queues[0]!, config) };
  } catch (err) {
    for (const q of queues) q.close();
    throw err;
  }
}

export async function startWorkers(config: Config, opts: WorkersOptions = {}): Promise<Workers> {
  const n = config.workers;
  const logger = opts.logger ?? createLogger(config.logLevel);
  const { queues, changes } = openQueues(config, n, opts);
  const keep = [...capabilitiesNeeded(config.listenPort), ...config.keepCapabilities];
  // Never returns: a fresh process without capabilities adopts the N queues (src/tun/caps.ts).
  if (opts.dropCapabilities === true && holdsCapabilities(ownCapabilities(), keep)) reexecWithoutCapabilities(queues, keep, changes);

  const memory = config.memoryLimit ?? defaultMemoryLimit(readSmallFile).bytes;
  const share = workerShare(config, n, memory);
  const secret = new Uint8Array(randomBytes(16));
  const script = opts.workerScript ?? fileURLToPath(new URL('./worker.js', import.meta.url));
  const slots: Slot[] = [];
  let shuttingDown = false;
  let restarts = 0;
  let seq = 0;

  const request = <T>(slot: Slot, m: MainToWorker & { seq: number }): Promise<T | null> =>
    new Promise((resolve) => {
      if (!slot.ready) {
        resolve(null);
        return;
      }
      const timer = setTimeout(() => {
        slot.pending.delete(m.seq);
        resolve(null);
      }, REQUEST_TIMEOUT_MS);
      slot.pending.set(m.seq, (body) => {
        clearTimeout(timer);
        resolve(body as T);
      });
      slot.worker.postMessage(m);
    });

  // Process-wide facts, given once by the main thread: prom-client's process and Node.js metrics
  // (this thread's event loop and heap; a worker's are its own), build info, readiness, ports.
  const registry = new client.Registry();
  registerProcessMetrics([registry]);
  new client.Gauge({ name: 'synfin_build_info', help: 'Always 1; labels say which synfin and which Node.js.', labelNames: ['version', 'node'] as const, registers: [registry], collect() { this.set({ version: VERSION, node: process.version }, 1); } });
  new client.Gauge({ name: 'synfin_ready', help: '1 while synfin is ready (as /readyz answers 200): with --workers, every worker ready; 0 before, while shutting down, and while a worker is being replaced.', registers: [registry], collect() { this.set(isReady() ? 1 : 0); } });
  new client.Gauge({ name: 'synfin_ephemeral_ports', help: "Local ports the kernel picks from for synfin's upstream sockets: the size of net.ipv4.ip_local_port_range in synfin's network namespace; NaN when it cannot be read.", registers: [registry], collect() { this.set(ephemeralPortCount() ?? Number.NaN); } });
  new client.Gauge({ name: 'synfin_workers', help: 'Worker threads (--workers) by state: ready, or starting (a replacement included).', labelNames: ['state'] as const, registers: [registry], collect() { const r = slots.filter((s) => s.ready).length; this.set({ state: 'ready' }, r); this.set({ state: 'starting' }, n - r); } });
  new client.Counter({ name: 'synfin_worker_restarts_total', help: 'Worker threads replaced after an unexpected exit.', registers: [registry], collect() { this.reset(); this.inc(restarts); } });

  const isReady = (): boolean => !shuttingDown && slots.length === n && slots.every((s) => s.ready);

  const metricsText = async (openMetrics: boolean): Promise<{ body: string; contentType: string }> => {
    const perWorker = await Promise.all(slots.map((s) => request<WorkerMetrics>(s, { type: 'metrics', seq: ++seq })));
    const first = perWorker.findIndex((w) => w !== null);
    // The main thread's families come once: taken as they are (prom-client marks some `omit` or
    // `average` for its cluster merge, which would drop process_start_time_seconds here).
    const own = (await registry.getMetricsAsJSON()).map((f) => ({ ...f, aggregator: 'first' }));
    const families = [own, [perWorkerOpened(perWorker)], ...perWorker.map((w, i) => (w === null ? [] : workerFamilies(w, i === first)))];
    const type = openMetrics ? client.Registry.OPENMETRICS_CONTENT_TYPE : client.Registry.PROMETHEUS_CONTENT_TYPE;
    // aggregate(metrics, contentType): the type declarations omit the second parameter.
    const aggregate = client.AggregatorRegistry.aggregate as unknown as (m: unknown[], t: string) => client.Registry;
    const merged = aggregate(families, type);
    return { body: await merged.metrics(), contentType: merged.contentType };
  };

  const connections = (q: ConnectionsQuery[]): Promise<Array<ConnectionsAnswer | null>> =>
    Promise.all(slots.map((s, i) => request<ConnectionsAnswer>(s, { type: 'connections', seq: ++seq, query: q[i]! })));

  const history = (q: HistoryQuery, limit: number): Promise<Array<HistoryRecord[] | null>> =>
    Promise.all(slots.map((s) => request<HistoryRecord[]>(s, { type: 'history', seq: ++seq, query: q, limit })));

  // /api/events: the workers relay transitions only while the main thread has readers.
  const readers = new Set<(batch: readonly RelayedTransition[], dropped: number) => void>();
  const relay = (slot: Slot, on: boolean): void => slot.worker.postMessage({ type: 'events', on } satisfies MainToWorker);
  const subscribeTransitions = (reader: (batch: readonly RelayedTransition[], dropped: number) => void): (() => void) => {
    readers.add(reader);
    if (readers.size === 1) for (const s of slots) if (s.ready) relay(s, true);
    return () => {
      readers.delete(reader);
      if (readers.size === 0) for (const s of slots) if (s.ready) relay(s, false);
    };
  };

  const app = buildMainApp({
    config,
    n,
    isReady,
    metrics: metricsText,
    connections,
    history,
    historyCapacity: share.history * n,
    summaries: (since) => Promise.all(slots.map((s) => request<SummaryParts>(s, { type: 'summary', seq: ++seq, ...(since !== undefined ? { since } : {}) }))),
    subscribeTransitions,
    capture: (configure) => Promise.all(slots.map((s, i) => request<CaptureStatus>(s, { type: 'capture', seq: ++seq, configure: configure === null ? null : configure(i) }))),
    live: {
      open: (tap, service) => {
        for (const s of slots) if (s.ready) s.worker.postMessage({ type: 'liveOpen', tap, ...(service !== undefined ? { service } : {}) } satisfies MainToWorker);
      },
      take: (tap, skip) => Promise.all(slots.map((s) => request<LiveRecords>(s, { type: 'liveTake', seq: ++seq, tap, skip }))),
      close: (tap) => {
        for (const s of slots) if (s.ready) s.worker.postMessage({ type: 'liveClose', tap } satisfies MainToWorker);
      },
    },
    pcap: (index, local) => request<PcapAnswer>(slots[index]!, { type: 'pcap', seq: ++seq, id: local }),
    log: logger.child({ component: 'http' }),
  });
  let listenUrl: string;
  try {
    await app.listen({ host: config.listenHost, port: config.listenPort });
  } catch (err) {
    for (const q of queues) q.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ConfigError(`--listen: ${config.listenHost}:${config.listenPort} is already in use`);
    if (code === 'EADDRNOTAVAIL') throw new ConfigError(`--listen: ${config.listenHost} is not an address of this host`);
    if (code === 'EACCES') throw new ConfigError(`--listen: no permission to listen on port ${config.listenPort}`);
    throw err;
  }
  const addr = app.server.address();
  const guard = addr !== null && typeof addr === 'object' ? { host: addr.address, port: addr.port } : { host: config.listenHost, port: config.listenPort };
  listenUrl = `http://${guard.host.includes(':') ? `[${guard.host}]` : guard.host}:${guard.port}`;

  const spawn = (index: number): Promise<void> => {
    const data: WorkerData = { config: share, index, workers: n, fd: queues[index]!.fd, name: queues[index]!.name, netns: opts.netns ?? null, secret, timeOrigin: performance.timeOrigin, listenGuard: guard };
    const worker = new Worker(script, { workerData: data });
    const slot: Slot = { index, worker, ready: false, pending: new Map(), startedAt: Date.now(), exited: false };
    slots[index] = slot;
    return new Promise((resolve, reject) => {
      let settled = false;
      worker.on('message', (m: WorkerToMain) => {
        if (m.type === 'transitions') {
          for (const reader of readers) reader(m.batch, m.dropped);
        } else if (m.type === 'ready') {
          slot.ready = true;
          if (readers.size > 0) relay(slot, true);
          settled = true;
          resolve();
        } else if (m.type === 'failed') {
          settled = true;
          reject(new ConfigError(`worker ${index} failed to start: ${m.message}`));
        } else if (m.type === 'reply') {
          const done = slot.pending.get(m.seq);
          slot.pending.delete(m.seq);
          done?.(m.body);
        }
      });
      worker.on('error', (err) => {
        logger.error({ worker: index, err: { message: err.message } }, `worker ${index} failed: ${err.message}`);
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      worker.on('exit', (code) => {
        const wasReady = slot.ready;
        slot.ready = false;
        slot.exited = true;
        for (const done of slot.pending.values()) done(null);
        slot.pending.clear();
        if (!settled) {
          // Gone before it said ready or failed (a crash while starting): a failed start.
          settled = true;
          reject(new ConfigError(`worker ${index} exited (code ${code}) before it was ready`));
          return;
        }
        // A worker that never became ready failed to start: whoever started it (the first start,
        // or replace() and its retries) deals with that. Only a running worker's exit replaces it.
        if (shuttingDown || slots[index] !== slot || !wasReady) return;
        restarts++;
        // A worker that dies right after its start is not restarted in a tight loop.
        const delay = Date.now() - slot.startedAt < 1000 ? 1000 : 0;
        logger.error({ worker: index, code, restartInMs: delay }, `worker ${index} exited (code ${code}): starting a new one on queue ${index}; its connections are lost`);
        replace(index, delay);
      });
    });
  };

  // A replacement that fails to start is tried again every 5 s (the queue stays open meanwhile).
  const retryMs = opts.replaceRetryMs ?? 5000;
  const replace = (index: number, delay: number): void => {
    setTimeout(() => {
      if (shuttingDown) return;
      spawn(index).then(
        () => logger.info({ worker: index }, `worker ${index} replaced`),
        (err: Error) => {
          logger.error({ worker: index, err: { message: err.message }, retryInMs: retryMs }, `worker ${index} could not be replaced: trying again in ${retryMs / 1000} s`);
          replace(index, retryMs);
        },
      );
    }, delay);
  };

  try {
    await Promise.all(queues.map((_, i) => spawn(i)));
  } catch (err) {
    shuttingDown = true;
    await Promise.all(slots.map((s) => s.worker.terminate()));
    await app.close();
    for (const q of queues) q.close();
    throw err;
  }
  logger.info({ tun: queues[0]!.name, workers: n, listen: listenUrl, version: VERSION, memoryLimit: memory, deviceChanges: changes }, 'synfin ready');

  const onSighup = (): void => {
    for (const s of slots) s.worker.postMessage({ type: 'reload' } satisfies MainToWorker);
  };
  let shutdownPromise: Promise<void> | null = null;
  let graceEnded = false;
  const endGrace = (reason = 'shutdown'): void => {
    if (graceEnded) return;
    graceEnded = true;
    if (shutdownPromise === null) void shutdown(reason);
    // Each worker ends its own grace period (it may still be waiting for its connections).
    for (const s of slots) if (!s.exited) s.worker.postMessage({ type: 'endGrace', reason } satisfies MainToWorker);
  };
  const shutdown = (reason = 'shutdown'): Promise<void> => {
    if (shutdownPromise !== null) return shutdownPromise;
    shuttingDown = true;
    logger.info({ reason, workers: n }, 'shutting down: every worker stops accepting and waits for its open connections');
    shutdownPromise = (async () => {
      // Each worker gives its connections the grace period and exits.
      await Promise.all(
        slots.map(
          (s) =>
            new Promise<void>((resolve) => {
              if (s.exited) {
                resolve();
                return;
              }
              s.worker.once('exit', () => resolve());
              s.worker.postMessage({ type: 'shutdown', reason } satisfies MainToWorker);
            }),
        ),
      );
      process.off('SIGHUP', onSighup);
      await app.close();
      for (const q of queues) q.close();
      logger.info('synfin stopped');
    })();
    return shutdownPromise;
  };
  if (opts.installSignalHandlers === true) {
    // As with one thread: SIGHUP re-reads --service-file; without one, SIGHUP keeps its default.
    if (config.serviceFile !== null) process.on('SIGHUP', onSighup);
    installStopSignals({ shutdown, endGrace }, logger);
  }
  return { config, listenUrl, app, queues, threads: () => slots.map((s) => s.worker), restarts: () => restarts, shutdown, endGrace };
}
