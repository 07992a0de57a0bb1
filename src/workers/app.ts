/**
 * The HTTP surface of the main thread with --workers N > 1: /healthz, /readyz (ready once every
 * worker is), /metrics merged from every worker, /api/connections and /api/history merged from
 * every worker's table and recorder, /api/events relayed from every worker's event hub, the live
 * page (GET /, /api/summary summed from every worker's parts) and the live capture
 * (/api/capture.pcap, every worker's ring in time order): every route of the single-thread API.
 */
import crypto from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { BAD_CURSOR, connectionsQuerySchema, cursorAfter, DEFAULT_PAGE_LIMIT, historyQuerySchema, isLoopbackPeer, openTransitionStream, parseSince, REDACTED, redactRow, refuseForeignHosts, showsAddresses, tooManyReaders } from '../http/app.js';
import type { HistoryQuery, HistoryRecord } from '../observability/history.js';
import { mergeHistory, type RelayedTransition } from './history.js';
import type { ConnectionFilter } from '../observability/table.js';
import { localAfter, mergePages } from './connections.js';
import type { CaptureStatus, ConnectionsAnswer, ConnectionsQuery, LiveRecords, PcapAnswer } from './protocol.js';
import { BUFFER_BYTES_ERROR, captureBodySchema, captureBufferBytes, DEFAULT_LIVE_SECONDS, liveQuerySchema, LiveMerge, openLiveResponse, PCAP_CONTENT_TYPE, runLive } from '../http/capture.js';
import { CAPTURE_MIN_BYTES } from '../stack/capture.js';
import { livePage } from '../http/page.js';
import { summaryOf, type SummaryParts } from '../observability/summary.js';

/** The rings together: on when every worker's is, sizes and counts summed. */
function mergeCapture(all: ReadonlyArray<CaptureStatus | null>): Record<string, unknown> {
  const got = all.filter((s): s is CaptureStatus => s !== null);
  return {
    enabled: got.length > 0 && got.every((s) => s.enabled),
    active: got.some((s) => s.active),
    bufferBytes: got.reduce((a, s) => a + s.bufferBytes, 0),
    snaplen: got[0]?.snaplen ?? 0,
    records: got.reduce((a, s) => a + s.records, 0),
    overwritten: got.reduce((a, s) => a + s.overwritten, 0),
    workers: all.length,
    ...(got.length < all.length ? { workersMissing: all.length - got.length } : {}),
  };
}

export interface MainAppOptions {
  config: Config;
  n: number;
  isReady(): boolean;
  metrics(openMetrics: boolean): Promise<{ body: string; contentType: string }>;
  /** One query per worker (in worker order); each answer, or null for a worker that did not answer. */
  connections(q: ConnectionsQuery[]): Promise<Array<ConnectionsAnswer | null>>;
  /** Every worker's newest `limit` matching records (null: did not answer). */
  history(q: HistoryQuery, limit: number): Promise<Array<HistoryRecord[] | null>>;
  /** The workers' recorders together (0: --history 0). */
  historyCapacity: number;
  /** Every worker's summary parts (handshake seconds after `since` only); null for a worker that did not answer. */
  summaries(since: number | undefined): Promise<Array<SummaryParts | null>>;
  /** Receive the workers' transitions (batches) until the returned function is called. */
  subscribeTransitions(reader: (batch: readonly RelayedTransition[], dropped: number) => void): () => void;
  /** Every worker's capture status after `configure` (null: status only); null for a worker that did not answer. */
  capture(configure: ((index: number) => { enabled: boolean; bufferBytes?: number; snaplen?: number }) | null): Promise<Array<CaptureStatus | null>>;
  /**
   * Live captures across the workers' rings: `open` a tap numbered `tap` on every worker, `take`
   * each worker's records since the last take (null: did not answer), `close` them.
   */
  live: {
    open(tap: number, service: string | undefined): void;
    take(tap: number, skip: boolean): Promise<Array<LiveRecords | null>>;
    close(tap: number): void;
  };
  /** Worker `index`'s pcap of its connection `local`; null when it did not answer. */
  pcap(index: number, local: number): Promise<PcapAnswer | null>;
  /** Most bytes a slow /api/events reader may have queued before it loses events. */
  sseQueueBytes?: number;
  log?: FastifyBaseLogger;
}

export function buildMainApp(opts: MainAppOptions): FastifyInstance {
  const { config, n } = opts;
  const instance = crypto.randomBytes(4).toString('hex');
  const app = Fastify({ logger: false, ajv: { customOptions: { removeAdditional: false, coerceTypes: true, allErrors: false } } });

  // The same DNS-rebinding guard as the single-thread API (RFC 9110 §15.5.20).
  refuseForeignHosts(app, config.apiHosts);
  app.setErrorHandler((error, req, reply) => {
    const err = error as { statusCode?: number; message: string };
    const status = err.statusCode ?? 500;
    if (status >= 500) opts.log?.error({ req: { method: req.method, url: req.url }, err: error }, 'request failed');
    void reply.status(status).send({ error: status >= 500 ? 'internal error' : err.message, statusCode: status });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => (opts.isReady() ? { status: 'ready' } : reply.status(503).send({ status: 'not ready' })));

  app.get('/metrics', async (req, reply) => {
    const openMetrics = (req.headers.accept ?? '').includes('application/openmetrics-text');
    const t0 = performance.now();
    const { body, contentType } = await opts.metrics(openMetrics);
    reply.header('server-timing', `workers;dur=${(performance.now() - t0).toFixed(2)}`);
    return reply.header('content-type', contentType).send(body);
  });

  app.get<{ Querystring: ConnectionFilter & { limit?: number; cursor?: string } }>('/api/connections', { schema: { querystring: connectionsQuerySchema } }, async (req, reply) => {
    const { limit = DEFAULT_PAGE_LIMIT, cursor, ...filter } = req.query;
    const after = cursor === undefined ? 0 : cursorAfter(cursor, instance);
    if (after < 0) return reply.status(400).send(BAD_CURSOR);
    const show = showsAddresses(config.apiAddresses, req);
    if (!show && filter.destination !== undefined) {
      return reply.status(403).send({ error: 'addresses are not shown to this client (--api-addresses): no destination filter', statusCode: 403 });
    }
    // Each worker is asked for a whole page after the cursor (its own ids); the merge keeps the
    // first `limit` by global id (id × N + worker), so the next page starts where this one ends.
    const queries: ConnectionsQuery[] = [];
    for (let i = 0; i < n; i++) queries.push({ filter, afterId: localAfter(after, i, n), limit, first: cursor === undefined });
    const answers = await opts.connections(queries);
    const page = mergePages(answers, n, limit);
    const missing = answers.filter((a) => a === null).length;
    const last = page.rows.length > 0 ? page.rows[page.rows.length - 1]!.id : after;
    const next = page.more ? instance + last.toString(16) : null;
    return reply.type('application/json; charset=utf-8').send({
      count: page.rows.length,
      addresses: show ? 'shown' : REDACTED,
      connections: show ? page.rows : page.rows.map(redactRow),
      next,
      // Workers that did not answer (being replaced): their connections are missing from the page.
      ...(missing > 0 ? { workersMissing: missing } : {}),
    });
  });

  app.get<{ Querystring: Omit<HistoryQuery, 'since'> & { since?: string; limit?: number } }>('/api/history', { schema: { querystring: historyQuerySchema } }, async (req, reply) => {
    if (opts.historyCapacity === 0) return reply.status(404).send({ error: 'the flight recorder is off (--history 0)', statusCode: 404 });
    const { limit = DEFAULT_PAGE_LIMIT, since, ...filter } = req.query;
    const q: HistoryQuery = { ...filter };
    if (since !== undefined) {
      const at = parseSince(since);
      if (Number.isNaN(at)) return reply.status(400).send({ error: 'querystring/since must be seconds since the epoch or an ISO 8601 time (2026-12-06T23:50:00Z)', statusCode: 400 });
      q.since = at;
    }
    const show = showsAddresses(config.apiAddresses, req);
    // Each worker's newest `limit`, merged newest first: the newest `limit` of them all.
    const records = mergeHistory(await opts.history(q, limit), n, limit);
    return reply.type('application/json; charset=utf-8').send({
      count: records.length,
      addresses: show ? 'shown' : REDACTED,
      capacity: opts.historyCapacity,
      connections: show ? records : records.map((r) => ({ ...r, client: REDACTED, destination: REDACTED })),
    });
  });

  let eventStreams = 0;
  app.get('/api/events', (req, reply) => {
    // As the single-thread stream (src/http/app.ts): bounded readers, a bounded queue per reader.
    if (eventStreams >= config.maxEventStreams) return reply.status(503).header('retry-after', '10').send(tooManyReaders(config.maxEventStreams));
    eventStreams++;
    const show = showsAddresses(config.apiAddresses, req);
    openTransitionStream(
      reply,
      opts.sseQueueBytes ?? 1 << 20,
      (stream) =>
        opts.subscribeTransitions((batch, lost) => {
          stream.lost(lost);
          for (const t of batch) {
            if (stream.full()) continue;
            stream.send({
              id: t.id,
              client: show ? t.client : REDACTED,
              destination: show ? t.destination : REDACTED,
              service: t.service,
              from: t.from,
              to: t.to,
              secondsInFrom: t.secondsInFrom,
              dropped: 0,
            });
          }
        }),
      () => eventStreams--,
    );
  });

  app.get('/api/capture', async () => mergeCapture(await opts.capture(null)));

  app.post<{ Body: { enabled: boolean; bufferBytes?: number | string; snaplen?: number } }>('/api/capture', { schema: { body: captureBodySchema } }, async (req, reply) => {
    // As with one thread: only a local administrator changes what synfin keeps in memory.
    if (!isLoopbackPeer(req.raw.socket.remoteAddress)) return reply.status(403).send({ error: 'POST /api/capture is accepted from loopback only', statusCode: 403 });
    const { enabled, snaplen } = req.body;
    const bufferBytes = captureBufferBytes(req.body.bufferBytes);
    if (bufferBytes === null) return reply.status(400).send(BUFFER_BYTES_ERROR);
    // The size asked for is the rings' together: each worker's share, at least a ring's minimum.
    const each = bufferBytes === undefined ? undefined : Math.max(CAPTURE_MIN_BYTES, Math.ceil(bufferBytes / n));
    return mergeCapture(await opts.capture(() => ({ enabled, ...(each !== undefined ? { bufferBytes: each } : {}), ...(snaplen !== undefined ? { snaplen } : {}) })));
  });

  // A connection's id names its worker (id = local × N + index): its packets are in that worker's ring.
  app.get<{ Params: { id: number } }>('/api/connections/:id/pcap', { schema: { params: { type: 'object', required: ['id'], properties: { id: { type: 'integer', minimum: 1 } } } } }, async (req, reply) => {
    if (!showsAddresses(config.apiAddresses, req)) {
      return reply.status(403).send({ error: 'packets carry addresses, which are not shown to this client (--api-addresses)', statusCode: 403 });
    }
    const id = req.params.id;
    const local = Math.floor(id / n);
    const answer = local < 1 ? { off: false as const, file: new Uint8Array(0), packets: 0 } : await opts.pcap(id % n, local);
    if (answer === null) return reply.status(503).send({ error: `worker ${id % n} did not answer (being replaced?)`, statusCode: 503 });
    if (answer.off) return reply.status(409).send({ error: 'capture is off (--capture-buffer)', statusCode: 409 });
    if (answer.packets === 0) return reply.status(404).send({ error: `no packets of connection ${id} in the capture ring`, statusCode: 404 });
    return reply
      .header('content-type', PCAP_CONTENT_TYPE)
      .header('content-disposition', `attachment; filename="synfin-connection-${id}.pcap"`)
      .send(Buffer.from(answer.file.buffer, answer.file.byteOffset, answer.file.byteLength));
  });

  // The live page and its summary: the workers' parts summed (quantiles from the summed buckets).
  // A worker being replaced is left out, as it is from the other merged routes.
  livePage({
    snapshot: async (since) => summaryOf((await opts.summaries(since)).filter((p): p is SummaryParts => p !== null), {}, since),
  })(app);

  // A live capture of every worker's ring: each poll takes what every worker got since the last
  // one and writes it in time order, across polls too (LiveMerge; a worker being replaced meanwhile
  // contributes nothing).
  const live = new Set<() => void>();
  let taps = 0;
  app.addHook('onClose', async () => {
    for (const end of [...live]) end();
  });
  app.get<{ Querystring: { seconds?: number; service?: string } }>('/api/capture.pcap', { schema: { querystring: liveQuerySchema } }, (req, reply) => {
    if (!showsAddresses(config.apiAddresses, req)) {
      void reply.status(403).send({ error: 'packets carry addresses, which are not shown to this client (--api-addresses)', statusCode: 403 });
      return;
    }
    const tap = ++taps;
    opts.live.open(tap, req.query.service);
    const res = openLiveResponse(reply);
    const merge = new LiveMerge();
    const poll = async (skip: boolean, last: boolean): Promise<Buffer | null> => {
      const got = await opts.live.take(tap, skip);
      if (skip) merge.drop();
      return merge.next(got, last);
    };
    runLive(req, res, (req.query.seconds ?? DEFAULT_LIVE_SECONDS) * 1000, live, poll, () => opts.live.close(tap));
  });

  return app;
}
