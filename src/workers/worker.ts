/**
 * One worker thread of `synfin run --workers N` (src/workers/supervisor.ts starts it): a whole
 * stack (flow table, timers, TIME-WAIT, SYN cookies, upstream sockets, its share of the limits)
 * on one queue of the multi-queue TUN device, adopted by fd, without an HTTP server of its own.
 * It answers the main thread's requests (metrics, the connection table) over its parentPort.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { LiveTap, pcapOf, status as captureStatus } from '../http/capture.js';
import { createLogger } from '../observability/log.js';
import { startSynfin, type Synfin } from '../runtime.js';
import { captureClockUs } from '../stack/capture.js';
import { Tun } from '../tun/index.js';
import type { CaptureStatus, MainToWorker, WorkerData, WorkerMetrics, WorkerToMain } from './protocol.js';
import { answerConnections } from './connections.js';
import { answerHistory, TransitionRelay } from './history.js';

const data = workerData as WorkerData;
const port = parentPort!;
const send = (m: WorkerToMain): void => port.postMessage(m);

async function main(): Promise<void> {
  const logger = createLogger(data.config.logLevel).child({ worker: data.index });
  // A duplicate of the main thread's fd: this worker's shutdown (or its death) closes only its
  // own, and the queue stays attached for the worker that replaces it.
  const tun = Tun.open({ name: data.name, vnetHdr: true, fd: data.fd, dup: true, netns: data.netns ?? undefined });
  // One time line for every worker (a worker's performance.now() starts at its birth): ISNs and
  // timestamps stay monotonic per 4-tuple if a flow ever changes worker (RFC 6528, RFC 7323).
  const offset = performance.timeOrigin - data.timeOrigin;
  const clock = { now: (): number => performance.now() + offset };
  const synfin = await startSynfin(data.config, {
    tun,
    logger,
    serveHttp: false,
    listenGuard: data.listenGuard,
    secret: data.secret,
    clock,
  });
  const relay = new TransitionRelay(synfin, data.index, data.workers, (batch, dropped) => send({ type: 'transitions', batch, dropped }));
  port.on('message', (m: MainToWorker) => void handle(synfin, relay, m));
  send({ type: 'ready' });
}

/** The main thread's live captures, by its tap number (each closed by liveClose, or with the worker). */
const taps = new Map<number, LiveTap>();

async function handle(synfin: Synfin, relay: TransitionRelay, m: MainToWorker): Promise<void> {
  switch (m.type) {
    case 'metrics': {
      await synfin.connections.prepareScrape();
      const families = (await synfin.metrics.registry.getMetricsAsJSON()) as unknown as WorkerMetrics;
      send({ type: 'reply', seq: m.seq, body: families });
      return;
    }
    case 'connections':
      send({ type: 'reply', seq: m.seq, body: await answerConnections(synfin, m.query) });
      return;
    case 'history':
      send({ type: 'reply', seq: m.seq, body: await answerHistory(synfin, m.query, m.limit) });
      return;
    case 'summary':
      send({ type: 'reply', seq: m.seq, body: synfin.summary.parts(m.since) });
      return;
    case 'capture':
      if (m.configure !== null) synfin.capture.configure(m.configure);
      send({ type: 'reply', seq: m.seq, body: captureStatus(synfin.capture) as unknown as CaptureStatus });
      return;
    case 'pcap': {
      const ring = synfin.capture.ring;
      if (ring === null) {
        send({ type: 'reply', seq: m.seq, body: { off: true } });
        return;
      }
      const { file, packets } = await pcapOf(ring, m.id, () => synfin.capture.ring);
      send({ type: 'reply', seq: m.seq, body: { off: false, file, packets } });
      return;
    }
    case 'liveOpen':
      taps.get(m.tap)?.close();
      taps.set(m.tap, new LiveTap(synfin.capture, m.service, (id) => synfin.connections.serviceOfId(id)));
      return;
    case 'liveTake': {
      const takenAtUs = captureClockUs();
      const got = taps.get(m.tap)?.take(m.skip) ?? null;
      send({ type: 'reply', seq: m.seq, body: { records: got ?? new Uint8Array(0), takenAtUs } });
      return;
    }
    case 'liveClose':
      taps.get(m.tap)?.close();
      taps.delete(m.tap);
      return;
    case 'events':
      if (m.on) relay.start();
      else relay.stop();
      return;
    case 'reload':
      synfin.reloadServices();
      return;
    case 'endGrace':
      synfin.endGrace(m.reason);
      return;
    case 'shutdown':
      relay.stop();
      await synfin.shutdown(m.reason);
      // Exit with the event loop's pending work dropped: the stack and its sockets are closed.
      process.exit(0);
  }
}

main().catch((err: unknown) => {
  const e = err as { message?: string; code?: string };
  send({ type: 'failed', message: String(e.message ?? err), code: e.code ?? null });
  process.exit(1);
});
