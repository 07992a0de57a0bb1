/**
 * HTTP 5xx answers leave a log line through synfin's pino logger (the `log` option of build()):
 * a handler that throws is logged at error with its stack, a 503 for load at warn, /readyz's 503
 * at debug only; 2xx and 4xx answers log nothing.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { build } from '../../src/http/app.js';
import { createLogger, type LogLevel } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';

interface LogLine {
  level: number;
  msg: string;
  statusCode?: number;
  component?: string;
  req?: { method: string; url: string };
  err?: { message: string; stack: string; type: string };
}

function setup(level: LogLevel) {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  const hub = new EventHub();
  const counters = { segmentsIn: 0, segmentsOut: 0, bytesClientToUpstream: 0, bytesUpstreamToClient: 0, tunRxPackets: 0, tunRxBytes: 0, tunTxPackets: 0, tunTxBytes: 0 };
  const metrics = createMetrics(hub, { clock: new ManualClock(0), forEachConnection: () => {}, counters: () => counters }, '0.0.0-test');
  const app = build({
    registry: metrics.registry,
    openMetricsRegistry: metrics.openMetricsRegistry,
    connections: { rows: () => [], forEachSample: () => {} },
    events: hub,
    isReady: () => false,
    describe: () => null,
    maxEventStreams: 0,
    log: createLogger(level, sink).child({ component: 'http' }),
    plugins: [
      (a) => {
        a.get('/boom', async () => {
          throw new TypeError('forced failure in a handler');
        });
        a.get('/bad-gateway', async (_req, reply) => reply.status(502).send({ error: 'upstream of the test' }));
      },
    ],
  });
  return { app, lines };
}

let apps: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const a of apps) await a.close();
  apps = [];
});

describe('HTTP 5xx logging', () => {
  it('a handler that throws answers 500 and logs one error line with the stack', async () => {
    const { app, lines } = setup('info');
    apps.push(app);
    const res = await app.inject('/boom?x=1');
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'internal error', statusCode: 500 });
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line.level).toBe(50);
    expect(line.component).toBe('http');
    expect(line.msg).toBe('request failed');
    expect(line.statusCode).toBe(500);
    expect(line.req).toEqual({ method: 'GET', url: '/boom?x=1' });
    expect(line.err?.message).toBe('forced failure in a handler');
    expect(line.err?.type).toBe('TypeError');
    expect(line.err?.stack).toMatch(/error-log\.test\.ts/);
  });

  it('a 5xx sent by a handler is an error line; a 503 for load is a warning', async () => {
    const { app, lines } = setup('info');
    apps.push(app);
    expect((await app.inject('/bad-gateway')).statusCode).toBe(502);
    expect((await app.inject('/api/events')).statusCode).toBe(503);
    expect(lines.map((l) => [l.level, l.statusCode, l.req?.url])).toEqual([
      [50, 502, '/bad-gateway'],
      [40, 503, '/api/events'],
    ]);
  });

  it("/readyz's 503 is logged at debug only; 2xx and 4xx answers log nothing", async () => {
    const quiet = setup('info');
    apps.push(quiet.app);
    expect((await quiet.app.inject('/readyz')).statusCode).toBe(503);
    expect((await quiet.app.inject('/healthz')).statusCode).toBe(200);
    expect((await quiet.app.inject('/api/connections?state=NOPE')).statusCode).toBe(400);
    expect((await quiet.app.inject('/nowhere')).statusCode).toBe(404);
    expect(quiet.lines).toEqual([]);

    const verbose = setup('debug');
    apps.push(verbose.app);
    expect((await verbose.app.inject('/readyz')).statusCode).toBe(503);
    expect(verbose.lines.map((l) => [l.level, l.msg, l.statusCode])).toEqual([[20, 'not ready', 503]]);
  });
});
