/**
 * The live page (GET /): the RFC 9293 Figure 5 state diagram with live counts and rates, the two
 * legs and who holds connections open, and the handshake latency chart. Everything it needs is
 * served from here (no CDN, nothing from the internet): the HTML, one stylesheet, one plain
 * JavaScript module, and GET /api/summary, which the page polls about once a second.
 *
 * The assets live next to this module in ./page/ and are read once when the plugin is created;
 * the build copies them to dist/http/page/ (tsc does not copy non-TS files).
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { SynfinError } from '../errors.js';
import type { SummarySnapshot } from '../observability/summary.js';

const ASSETS = {
  html: 'index.html',
  js: 'app.js',
  css: 'style.css',
} as const;

/**
 * Same-origin only: the page loads nothing from elsewhere, and a browser enforces it. No inline
 * script or style either (the page sets styles through classes and the CSSOM).
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const summaryQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    since: { type: 'integer', minimum: -1 },
  },
} as const;

/** Where the assets are: `dir` overrides (tests); otherwise ./page/ beside this module. */
export function readPageAssets(dir?: string): { html: string; js: string; css: string } {
  const base = dir ?? fileURLToPath(new URL('./page/', import.meta.url));
  const read = (name: string): string => {
    try {
      return fs.readFileSync(`${base.endsWith('/') ? base : `${base}/`}${name}`, 'utf8');
    } catch (err) {
      throw new SynfinError(
        'ERR_PAGE_ASSETS',
        `live page asset ${name} is missing in ${base} (the build must copy src/http/page/ to dist/http/page/)`,
        { cause: err },
      );
    }
  };
  return { html: read(ASSETS.html), js: read(ASSETS.js), css: read(ASSETS.css) };
}

export interface LivePageOptions {
  /** Directory of index.html, app.js and style.css (default: ./page/ beside this module). */
  assetsDir?: string;
}

/** A plugin for `build({ plugins: [livePage(summary)] })`. Reads the assets now: a broken install fails at start. */
/** What the page's /api/summary answers from: one stack's summary, or the workers' merged (--workers N). */
export interface SummarySource {
  snapshot(sinceSecond?: number): SummarySnapshot | Promise<SummarySnapshot>;
}

export function livePage(summary: SummarySource, opts: LivePageOptions = {}): (app: FastifyInstance) => void {
  const assets = readPageAssets(opts.assetsDir);
  return (app) => {
    app.get('/', async (_req, reply) =>
      reply
        .header('content-type', 'text/html; charset=utf-8')
        .header('content-security-policy', CSP)
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .send(assets.html),
    );
    app.get('/page/app.js', async (_req, reply) =>
      reply
        .header('content-type', 'text/javascript; charset=utf-8')
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .send(assets.js),
    );
    app.get('/page/style.css', async (_req, reply) =>
      reply
        .header('content-type', 'text/css; charset=utf-8')
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .send(assets.css),
    );
    app.get<{ Querystring: { since?: number } }>(
      '/api/summary',
      { schema: { querystring: summaryQuerySchema } },
      async (req, reply) => reply.header('cache-control', 'no-store').send(await summary.snapshot(req.query.since)),
    );
  };
}
