/**
 * The HTTP surface on --listen: /metrics, /healthz, /readyz, /api/connections, /api/events.
 * `build(opts)` returns the Fastify app without listening, so tests use `app.inject()`; only the
 * runtime calls listen().
 */
import net from 'node:net';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { OpenMetricsContentType, Registry } from 'prom-client';
import type { ApiAddressMode } from '../config.js';
import type { EventHub } from '../stack/events.js';
import type { ConnIdentity } from '../tcp/events.js';
import { STATE_NAMES, type State } from '../tcp/state.js';
import { matchesFilter, type ConnectionFilter, type ConnectionRow, type ConnectionSource } from '../observability/table.js';

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
function showsAddresses(mode: ApiAddressMode, req: FastifyRequest): boolean {
  if (mode === 'all') return true;
  if (mode === 'none') return false;
  return isLoopbackPeer(req.raw.socket.remoteAddress);
}

/** A row with its addresses (client, destination, both ends of the upstream socket) replaced. */
function redactRow(r: ConnectionRow): ConnectionRow {
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
  describe: (conn: ConnIdentity) => { client: string; destination: string } | null;
  /** Most events a slow /api/events reader may have queued before it loses events. */
  sseQueueBytes?: number;
  logger?: boolean | object;
  /** Who sees connection addresses (--api-addresses); default `loopback`. */
  apiAddresses?: ApiAddressMode;
  /**
   * Runs before each /metrics scrape (the kernel socket snapshot behind synfin_upstream_sockets);
   * its time and the registry's are reported in the response's Server-Timing header.
   */
  beforeScrape?: () => Promise<void>;
  /** Extra routes (the live page). */
  plugins?: Array<(app: FastifyInstance) => void | Promise<void>>;
}

const connectionsQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: [...STATE_NAMES] },
    waitingOn: { type: 'string', enum: ['app', 'upstream'] },
    minAge: { type: 'number', minimum: 0 },
    minIdle: { type: 'number', minimum: 0 },
    destination: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9A-Fa-f:.\\[\\]]+$' },
  },
} as const;

export function build(opts: AppOptions): FastifyInstance {
  const addressMode = opts.apiAddresses ?? 'loopback';
  const app = Fastify({
    logger: opts.logger ?? false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true, allErrors: false } },
  });

  app.setErrorHandler((error, _req, reply) => {
    const err = error as { statusCode?: number; message: string };
    const status = err.statusCode ?? 500;
    if (status >= 500) app.log.error({ err }, 'request failed');
    // Validation errors read as one clear line: "querystring/state must be equal to one of the allowed values".
    void reply.status(status).send({ error: status >= 500 ? 'internal error' : err.message, statusCode: status });
  });

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

  app.get<{ Querystring: ConnectionFilter }>(
    '/api/connections',
    { schema: { querystring: connectionsQuerySchema } },
    async (req, reply) => {
      const filter = req.query;
      const show = showsAddresses(addressMode, req);
      // Filtering by an address nobody may see would tell the requester which destinations have
      // connections (one probe per address): refused, not answered with redacted rows.
      if (!show && filter.destination !== undefined) {
        return reply.status(403).send({ error: 'addresses are not shown to this client (--api-addresses): no destination filter', statusCode: 403 });
      }
      // The app's socket states (sidecar) come from the kernel's table, read off the event loop;
      // requests within 100 ms share one read.
      await opts.connections.refreshKernel?.(100);
      const rows = opts.connections.rows().filter((r) => matchesFilter(r, filter));
      rows.sort((a, b) => b.ageSeconds - a.ageSeconds);
      return { count: rows.length, addresses: show ? 'shown' : REDACTED, connections: show ? rows : rows.map(redactRow) };
    },
  );

  app.get('/api/events', (req, reply) => {
    const limit = opts.sseQueueBytes ?? 1 << 20;
    const show = showsAddresses(addressMode, req);
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': synfin state transitions\n\n');
    let dropped = 0;
    let seq = 0;
    const unsubscribe = opts.events.subscribe({
      stateChange(conn: ConnIdentity, from: State, to: State, now: number, sinceMs: number) {
        // A slow reader must not slow the proxy or grow our memory: past the limit, events are
        // dropped for this reader and it is told how many (bounded queue per reader).
        if (res.writableLength > limit) {
          dropped++;
          return;
        }
        const where = show ? opts.describe(conn) : null;
        const data = JSON.stringify({
          id: conn.id,
          client: show ? (where?.client ?? null) : REDACTED,
          destination: show ? (where?.destination ?? null) : REDACTED,
          from: STATE_NAMES[from],
          to: STATE_NAMES[to],
          secondsInFrom: Math.max(0, now - sinceMs) / 1000,
          dropped,
        });
        dropped = 0;
        res.write(`id: ${++seq}\nevent: transition\ndata: ${data}\n\n`);
      },
    });
    const heartbeat = setInterval(() => {
      if (res.writableLength <= limit) res.write(': keep-alive\n\n');
    }, 15_000);
    heartbeat.unref();
    req.raw.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
    });
    reply.hijack();
  });

  for (const plugin of opts.plugins ?? []) void app.register(async (instance) => plugin(instance));
  return app;
}
