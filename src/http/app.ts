/**
 * The HTTP surface on --listen: /metrics, /healthz, /readyz, /api/connections, /api/history, /api/events.
 * `build(opts)` returns the Fastify app without listening, so tests use `app.inject()`; only the
 * runtime calls listen().
 */
import crypto from 'node:crypto';
import net from 'node:net';
import type { ServerResponse } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { OpenMetricsContentType, Registry } from 'prom-client';
import type { EventHub } from '../stack/events.js';
import type { ConnIdentity } from '../tcp/events.js';
import { STATE_NAMES, type State } from '../tcp/state.js';
import { pageOfRows, type ConnectionFilter, type ConnectionRow, type ConnectionSource } from '../observability/table.js';
import { CLOSERS, type HistoryQuery, type HistoryRecord, type HistorySource } from '../observability/history.js';
import { CLOSE_REASONS } from '../observability/metrics.js';

/**
 * Who sees connection addresses in /api/connections and /api/events (--api-addresses):
 * `loopback` only requests whose TCP peer is a loopback address, `all` everyone, `none` no one.
 */
export const API_ADDRESS_MODES = ['loopback', 'all', 'none'] as const;
export type ApiAddressMode = (typeof API_ADDRESS_MODES)[number];

/** What an address field holds when it is not shown to the requester. */
export const REDACTED = 'redacted';

// 127.0.0.0/8 and ::1; Node's BlockList also matches their IPv4-mapped IPv6 forms (::ffff:127.0.0.1).
const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether a request peer is on loopback; an unknown peer is not (fail closed). */
export function isLoopbackPeer(address: string | undefined): boolean {
  if (address === undefined) return false;
  const family = net.isIPv6(address) ? 'ipv6' : net.isIPv4(address) ? 'ipv4' : null;
  return family !== null && LOOPBACK.check(address, family);
}

/**
 * Whether this request may see addresses. The TCP peer's address decides, never a header
 * (X-Forwarded-For is whatever the client wrote). A reverse proxy on the same host makes every
 * request look local: choose `none` or `all` deliberately there.
 */
export function showsAddresses(mode: ApiAddressMode, req: FastifyRequest): boolean {
  if (mode === 'all') return true;
  if (mode === 'none') return false;
  return isLoopbackPeer(req.raw.socket.remoteAddress);
}

/**
 * DNS rebinding: a web page whose name the attacker re-points to 127.0.0.1 gets the browser to
 * talk to synfin as a loopback peer, and would read every address. Its requests still carry the
 * attacker's name in Host: RFC 9110 §15.5.20, 421 Misdirected Request ("not configured to
 * produce responses for this combination of scheme and authority"). HOST_EXEMPT's paths are
 * not checked. Used by the single-thread app and the --workers main thread alike.
 */
export function refuseForeignHosts(app: FastifyInstance, apiHostNames: readonly string[]): void {
  const apiHosts = new Set(apiHostNames.map((h) => h.toLowerCase().replace(/\.$/, '')));
  app.addHook('onRequest', (req, reply, done) => {
    const url = req.raw.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (HOST_EXEMPT.has(path) || hostAllowed(req.headers.host, apiHosts)) {
      done();
      return;
    }
    void reply.status(421).send({
      error: `Host "${String(req.headers.host ?? '').slice(0, 100)}" is not an IP address, localhost or a name given with --api-host: refused (DNS rebinding)`,
      statusCode: 421,
    });
  });
}

/** The 400 answer to a cursor that is not a `next` this process gave. */
export const BAD_CURSOR = { error: 'querystring/cursor is not a `next` of this synfin process: start again without cursor', statusCode: 400 } as const;

/** The id a /api/connections cursor continues after, or -1 when it is not one of this process (`instance`). */
export function cursorAfter(cursor: string, instance: string): number {
  const m = CURSOR_PATTERN.exec(cursor);
  return m === null || m[1] !== instance ? -1 : parseInt(m[2]!, 16);
}

/** The 503 answer when --max-event-streams readers of /api/events are open already. */
export function tooManyReaders(max: number): { error: string; statusCode: 503 } {
  return { error: `too many /api/events readers (--max-event-streams ${max}); try again when one has closed`, statusCode: 503 };
}

/** One transition as an /api/events reader gets it; `dropped` is filled in by the stream. */
export interface TransitionEvent {
  id: number;
  client: string | null;
  destination: string | null;
  service: string | null;
  from: string;
  to: string;
  secondsInFrom: number;
  dropped: number;
}

/**
 * One /api/events reader (server-sent events): the head, a heartbeat every 15 s, and a bounded
 * queue. A slow reader must not slow the proxy or grow our memory: past `limitBytes` queued,
 * events are dropped for this reader and the next one it gets says how many (`dropped`).
 * `subscribe` starts the feed and returns its unsubscribe, run with `onClose` when the reader
 * goes away.
 */
export function openTransitionStream(
  reply: FastifyReply,
  limitBytes: number,
  subscribe: (stream: TransitionStream) => () => void,
  onClose: () => void,
): void {
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write(': synfin state transitions\n\n');
  const unsubscribe = subscribe(new TransitionStream(res, limitBytes));
  const heartbeat = setInterval(() => {
    if (res.writableLength <= limitBytes) res.write(': keep-alive\n\n');
  }, 15_000);
  heartbeat.unref();
  reply.request.raw.on('close', () => {
    clearInterval(heartbeat);
    unsubscribe();
    onClose();
  });
  reply.hijack();
}

/** The writing side of one /api/events reader (openTransitionStream). */
export class TransitionStream {
  private dropped = 0;
  private seq = 0;
  constructor(
    private readonly res: ServerResponse,
    private readonly limitBytes: number,
  ) {}

  /** Whether the reader's queue is past its limit; if so the event about to be sent counts as dropped. */
  full(): boolean {
    if (this.res.writableLength <= this.limitBytes) return false;
    this.dropped++;
    return true;
  }

  /** Events lost before they reached this stream (a worker's relay dropped them). */
  lost(count: number): void {
    this.dropped += count;
  }

  send(event: TransitionEvent): void {
    event.dropped = this.dropped;
    this.dropped = 0;
    this.res.write(`id: ${++this.seq}\nevent: transition\ndata: ${JSON.stringify(event)}\n\n`);
  }
}

/** A history record with its addresses replaced (the same rule as a row's). */
function redactRecord(r: HistoryRecord): HistoryRecord {
  return { ...r, client: REDACTED, destination: REDACTED };
}

/** A row with its addresses (client, destination, both ends of the upstream socket) replaced. */
export function redactRow(r: ConnectionRow): ConnectionRow {
  return {
    ...r,
    client: REDACTED,
    destination: REDACTED,
    upstream: r.upstream === null ? null : { local: REDACTED, remote: REDACTED },
  };
}

export interface AppOptions {
  registry: Registry;
  /** The same metrics rendered as OpenMetrics (served when the scraper asks for it in Accept). */
  openMetricsRegistry: Registry<OpenMetricsContentType>;
  connections: ConnectionSource;
  events: EventHub;
  /** Ready = the TUN device is attached and the stack runs (and we are not shutting down). */
  isReady: () => boolean;
  /** Describe a connection for an event (addresses); null when unknown. */
  describe: (conn: ConnIdentity) => { client: string; destination: string; service?: string } | null;
  /** A connection's named service without its addresses (for readers that may not see them); null when unknown. */
  serviceOf?: (conn: ConnIdentity) => string | null;
  /** Most events a slow /api/events reader may have queued before it loses events. */
  sseQueueBytes?: number;
  logger?: boolean | object;
  /**
   * The logger HTTP failures go to (a pino child of synfin's): one line per 5xx answer, with the
   * error and its stack when a handler threw. Requests are not logged otherwise.
   */
  log?: FastifyBaseLogger;
  /** Who sees connection addresses (--api-addresses); default `loopback`. */
  apiAddresses?: ApiAddressMode;
  /**
   * Runs before each /metrics scrape (the kernel socket snapshot behind synfin_upstream_sockets);
   * its time and the registry's are reported in the response's Server-Timing header.
   */
  beforeScrape?: () => Promise<void>;
  /** Extra routes (the live page). */
  plugins?: Array<(app: FastifyInstance) => void | Promise<void>>;
  /** Most /api/events readers at once (--max-event-streams; default 16); more get 503. */
  maxEventStreams?: number;
  /** Host names the API answers to besides IP literals and localhost (--api-host). */
  apiHosts?: readonly string[];
  /** The flight recorder's ring behind /api/history; null or absent: the recorder is off (--history 0). */
  history?: HistorySource | null;
}

/** Rows per /api/connections page: the default, and the most a request may ask for. */
export const DEFAULT_PAGE_LIMIT = 1000;
export const MAX_PAGE_LIMIT = 10_000;

/**
 * Paths that answer whatever the Host header says: they carry no address (DNS rebinding gains a
 * page nothing there), and Prometheus, probes and the compose demo reach them by service name.
 * Everything else (the live page, its assets, /api/*) is Host-checked.
 */
const HOST_EXEMPT = new Set(['/metrics', '/healthz', '/readyz']);

/**
 * Whether a Host header names synfin in a way a DNS-rebinding page cannot: an IP literal (IPv4,
 * or IPv6 in brackets), `localhost`, or one of the `--api-host` names, each with or without a
 * port. A page rebinding attacker.example to 127.0.0.1 still sends `Host: attacker.example`.
 * A missing Host (HTTP/1.0) fails closed.
 */
export function hostAllowed(host: string | undefined, names: ReadonlySet<string>): boolean {
  if (host === undefined || host === '') return false;
  let name: string;
  let rest: string;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close < 0) return false;
    if (!net.isIPv6(host.slice(1, close))) return false;
    rest = host.slice(close + 1);
    return rest === '' || /^:\d{1,5}$/.test(rest);
  }
  const colon = host.indexOf(':');
  if (colon >= 0) {
    name = host.slice(0, colon);
    rest = host.slice(colon);
    if (!/^:\d{1,5}$/.test(rest)) return false;
  } else name = host;
  if (net.isIPv4(name)) return true;
  // Names compare case-insensitively; a trailing dot (the absolute form) is the same name.
  name = name.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name === 'localhost' || names.has(name);
}

export const CURSOR_PATTERN = /^([0-9a-f]{8})([0-9a-f]{1,13})$/;

/**
 * A page is built in slices, each one synchronous block on the event loop that moves the packets,
 * with a turn of the loop (setImmediate: TUN reads and timers run) between them: at most this many
 * rows built (TCP_INFO, kernel lookup, JSON) or connections examined by the filter per slice.
 */
const SLICE_ROWS = 200;
const SLICE_EXAMINED = 5_000;
/**
 * Over time /api/connections gets at most this share of the event loop (a token bucket of loop
 * milliseconds, refilled at API_LOOP_SHARE ms per ms, holding at most API_BURST_MS): a client
 * fetching pages in a tight loop waits for its slices instead of taking the proxy's time. One
 * default page costs a few ms, so an occasional request never waits.
 */
export const API_LOOP_SHARE = 0.03;
export const API_BURST_MS = 50;

/** The loop time /api/connections may still spend now (negative: a debt to wait out). */
export class LoopBudget {
  private tokens: number;
  private at: number;
  constructor(
    private readonly share = API_LOOP_SHARE,
    private readonly burstMs = API_BURST_MS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burstMs;
    this.at = now();
  }
  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burstMs, this.tokens + (now - this.at) * this.share);
    this.at = now;
  }
  /** Resolves once the bucket is not in debt. */
  async acquire(): Promise<void> {
    this.refill();
    while (this.tokens < 0) {
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(-this.tokens / this.share)));
      this.refill();
    }
  }
  charge(ms: number): void {
    this.refill();
    this.tokens -= ms;
  }
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export const connectionsQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: [...STATE_NAMES] },
    waitingOn: { type: 'string', enum: ['app', 'upstream'] },
    minAge: { type: 'number', minimum: 0 },
    minIdle: { type: 'number', minimum: 0 },
    destination: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9A-Fa-f:.\\[\\]]+$' },
    // A service name (src/observability/services.ts SERVICE_NAME_PATTERN) or `other`.
    service: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._/:@-]*$' },
    limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE_LIMIT },
    cursor: { type: 'string', minLength: 9, maxLength: 21, pattern: '^[0-9a-f]+$' },
  },
} as const;

type ConnectionsQuery = ConnectionFilter & { limit?: number; cursor?: string };

export const historyQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    service: { type: 'string', minLength: 1, maxLength: 253 },
    reason: { type: 'string', enum: [...CLOSE_REASONS] },
    closedFirstBy: { type: 'string', enum: [...CLOSERS] },
    minDuration: { type: 'number', minimum: 0 },
    // ISO 8601 (2026-12-06T23:50:00Z) or seconds since the epoch (1796601000, fractions allowed).
    since: { type: 'string', minLength: 1, maxLength: 40 },
    limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE_LIMIT },
  },
} as const;

type HistoryParams = Omit<HistoryQuery, 'since'> & { since?: string; limit?: number };

/** `?since=`: seconds since the epoch, or an ISO 8601 date and time; epoch ms, or NaN when it is neither. */
export function parseSince(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  // Date.parse also takes loose forms ("Dec 6"): only ISO 8601's shape is accepted.
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) return NaN;
  return Date.parse(text);
}

/** Records per slice of /api/history (built, then serialized) between turns of the event loop. */
const HISTORY_SLICE_ROWS = 500;
const HISTORY_SLICE_EXAMINED = 5_000;

export function build(opts: AppOptions): FastifyInstance {
  const addressMode = opts.apiAddresses ?? 'loopback';
  const maxEventStreams = opts.maxEventStreams ?? 16;
  // Cursors name this process (ids start again at 1 after a restart): a cursor from another one is refused, not misread.
  const instance = crypto.randomBytes(4).toString('hex');
  let eventStreams = 0;
  const budget = new LoopBudget();
  // Fastify's own logger stays off (it would log every request and its own start-up line): the
  // 5xx lines go straight to opts.log from the onResponse hook below.
  const log = opts.log;
  const app = Fastify({
    logger: opts.logger ?? false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true, allErrors: false } },
  });
  // What a handler threw, for the one log line of its 5xx answer (onResponse below).
  const failures = new WeakMap<FastifyRequest, unknown>();

  refuseForeignHosts(app, opts.apiHosts ?? []);

  app.setErrorHandler((error, req, reply) => {
    const err = error as { statusCode?: number; message: string };
    const status = err.statusCode ?? 500;
    if (status >= 500) failures.set(req, error);
    // Validation errors read as one clear line: "querystring/state must be equal to one of the allowed values".
    void reply.status(status).send({ error: status >= 500 ? 'internal error' : err.message, statusCode: status });
  });

  // Every 5xx answer is one log line: a handler that threw (with its stack) at error, a refusal
  // for load (503: too many /api/events readers) at warn. /readyz's 503 is an answer, not a
  // failure (synfin_ready says the same): debug.
  if (log !== undefined) {
    app.addHook('onResponse', (req, reply, done) => {
      const status = reply.statusCode;
      if (status >= 500) {
        const line = { req: { method: req.method, url: req.url }, statusCode: status, responseTime: reply.elapsedTime };
        const err = failures.get(req);
        if (err !== undefined) log.error({ ...line, err }, 'request failed');
        else if (status !== 503) log.error(line, `HTTP ${status}`);
        else if (req.routeOptions.url === '/readyz') log.debug(line, 'not ready');
        else log.warn(line, `HTTP ${status}`);
      }
      done();
    });
  }

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    if (opts.isReady()) return { status: 'ready' };
    return reply.status(503).send({ status: 'not ready' });
  });

  app.get('/metrics', async (req, reply) => {
    const accept = req.headers.accept ?? '';
    const openMetrics = accept.includes('application/openmetrics-text');
    const registry = openMetrics ? opts.openMetricsRegistry : opts.registry;
    const t0 = performance.now();
    await opts.beforeScrape?.();
    const t1 = performance.now();
    const body = await registry.metrics();
    const t2 = performance.now();
    // Where a slow scrape spends its time: waiting for the kernel's socket table (off the event
    // loop), or collecting and rendering (on it). RFC: W3C Server Timing.
    reply.header('server-timing', `kernel;dur=${(t1 - t0).toFixed(2)}, collect;dur=${(t2 - t1).toFixed(2)}`);
    return reply.header('content-type', registry.contentType).send(body);
  });

  app.get<{ Querystring: ConnectionsQuery }>(
    '/api/connections',
    { schema: { querystring: connectionsQuerySchema } },
    async (req, reply) => {
      const { limit = DEFAULT_PAGE_LIMIT, cursor, ...filter } = req.query;
      const afterId = cursor === undefined ? 0 : cursorAfter(cursor, instance);
      if (afterId < 0) return reply.status(400).send(BAD_CURSOR);
      const show = showsAddresses(addressMode, req);
      // Filtering by an address nobody may see would tell the requester which destinations have
      // connections (one probe per address): refused, not answered with redacted rows.
      if (!show && filter.destination !== undefined) {
        return reply.status(403).send({ error: 'addresses are not shown to this client (--api-addresses): no destination filter', statusCode: 403 });
      }
      // The app's socket states (sidecar) come from the kernel's table, read off the event loop
      // (a dump of every socket of the namespace, ~15 ms of a thread-pool thread with 20,000):
      // a first page shares a read with requests of the last 100 ms; the following pages of a
      // walk (with a cursor) take one up to a second old, so a client walking pages costs at
      // most one read a second.
      await opts.connections.refreshKernel?.(cursor === undefined ? 100 : 1000);
      // One page in id order (the order connections were opened): only its rows cost TCP_INFO and
      // a kernel lookup, nothing sorts the table, and the page is built and serialized in slices
      // between which the packets move (see SLICE_ROWS and API_LOOP_SHARE).
      const source = opts.connections;
      const parts: string[] = [];
      let count = 0;
      let lastId = afterId;
      let after = afterId;
      let more = false;
      for (;;) {
        await budget.acquire();
        let t0 = performance.now();
        const q = { filter, afterId: after, limit: Math.min(limit - count, SLICE_ROWS), maxExamined: SLICE_EXAMINED };
        const p = source.page?.(q) ?? pageOfRows(source.rows(), q);
        if (p.rows.length > 0 && source.resolveAppProcesses !== undefined) {
          // The processes holding the app's sockets, for these rows only: read in the thread
          // pool (/proc/PID/fd), so the wait is not loop time.
          budget.charge(performance.now() - t0);
          await source.resolveAppProcesses(p.rows);
          t0 = performance.now();
        }
        if (p.rows.length > 0) {
          const json = JSON.stringify(show ? p.rows : p.rows.map(redactRow));
          parts.push(json.slice(1, -1));
          count += p.rows.length;
          lastId = p.rows[p.rows.length - 1]!.id;
        }
        budget.charge(performance.now() - t0);
        if (p.resumeAfterId !== null) after = p.resumeAfterId;
        else if (p.more && count < limit) after = lastId;
        else {
          more = p.more;
          break;
        }
        await nextTurn();
      }
      const next = more ? JSON.stringify(instance + lastId.toString(16)) : 'null';
      // The body's assembly (half a megabyte for a default page) is loop time too.
      const t1 = performance.now();
      const body = Buffer.from(`{"count":${count},"addresses":"${show ? 'shown' : REDACTED}","connections":[${parts.join(',')}],"next":${next}}`);
      budget.charge(performance.now() - t1);
      return reply.type('application/json; charset=utf-8').send(body);
    },
  );

  app.get<{ Querystring: HistoryParams }>('/api/history', { schema: { querystring: historyQuerySchema } }, async (req, reply) => {
    const history = opts.history ?? null;
    if (history === null || history.capacity === 0) {
      return reply.status(404).send({ error: 'the flight recorder is off (--history 0)', statusCode: 404 });
    }
    const { limit = DEFAULT_PAGE_LIMIT, since, ...filter } = req.query;
    const q: HistoryQuery = { ...filter };
    if (since !== undefined) {
      const at = parseSince(since);
      if (Number.isNaN(at)) {
        return reply.status(400).send({ error: 'querystring/since must be seconds since the epoch or an ISO 8601 time (2026-12-06T23:50:00Z)', statusCode: 400 });
      }
      q.since = at;
    }
    const show = showsAddresses(addressMode, req);
    // Newest first, in slices with the packets moving between them (the same loop budget as /api/connections).
    const parts: string[] = [];
    let count = 0;
    let before = Infinity;
    for (;;) {
      await budget.acquire();
      const t0 = performance.now();
      const p = history.query(q, before, Math.min(limit - count, HISTORY_SLICE_ROWS), HISTORY_SLICE_EXAMINED);
      if (p.records.length > 0) {
        const json = JSON.stringify(show ? p.records : p.records.map(redactRecord));
        parts.push(json.slice(1, -1));
        count += p.records.length;
      }
      budget.charge(performance.now() - t0);
      if (p.next < 0 || count >= limit) break;
      before = p.next;
      await nextTurn();
    }
    const body = `{"count":${count},"addresses":"${show ? 'shown' : REDACTED}","capacity":${history.capacity},"connections":[${parts.join(',')}]}`;
    return reply.type('application/json; charset=utf-8').send(body);
  });

  app.get('/api/events', (req, reply) => {
    // Each reader costs a JSON line per transition and up to sseQueueBytes of queue: a bounded
    // number of them, so that readers that never read cannot pile up memory or event-loop time.
    if (eventStreams >= maxEventStreams) return reply.status(503).header('retry-after', '10').send(tooManyReaders(maxEventStreams));
    eventStreams++;
    const show = showsAddresses(addressMode, req);
    openTransitionStream(
      reply,
      opts.sseQueueBytes ?? 1 << 20,
      (stream) =>
        opts.events.subscribe({
          stateChange(conn: ConnIdentity, from: State, to: State, now: number, sinceMs: number) {
            if (stream.full()) return;
            const where = show ? opts.describe(conn) : null;
            stream.send({
              id: conn.id,
              client: show ? (where?.client ?? null) : REDACTED,
              destination: show ? (where?.destination ?? null) : REDACTED,
              // A label value (as on /metrics), not an address: every reader gets it.
              service: show ? (where?.service ?? null) : (opts.serviceOf?.(conn) ?? null),
              from: STATE_NAMES[from],
              to: STATE_NAMES[to],
              secondsInFrom: Math.max(0, now - sinceMs) / 1000,
              dropped: 0,
            });
          },
        }),
      () => eventStreams--,
    );
  });

  for (const plugin of opts.plugins ?? []) void app.register(async (instance) => plugin(instance));
  return app;
}
