import fs from 'node:fs';
import { identity } from '../helpers/identity.js';
import os from 'node:os';
import path from 'node:path';
import { apiParts, buildApi } from '../helpers/api-app.js';
import { afterEach, describe, expect, it } from 'vitest';
import { livePage, readPageAssets } from '../../src/http/page.js';
import { TRANSITIONS, type ConnectionSample } from '../../src/observability/metrics.js';
import { createSummary } from '../../src/observability/summary.js';
import { State, STATE_NAMES } from '../../src/tcp/state.js';

const T0 = 1_000_000;

function setup(samples: ConnectionSample[] = []) {
  const parts = apiParts({ startMs: T0, samples });
  const { hub, clock } = parts;
  const summary = createSummary(hub, parts.source, clock, { minIntervalMs: 0 });
  const app = buildApi(parts, { plugins: [livePage(summary)] });
  return { app, hub, clock, summary };
}

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});

describe('live page routes', () => {
  it('GET / serves the page, same-origin only', async () => {
    const { app } = setup();
    cleanup.push(() => app.close());
    const res = await app.inject('/');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(res.body).toContain('<script type="module" src="page/app.js"></script>');
    expect(res.body).toContain('href="page/style.css"');
    // Relative URLs only, so the page works under any path prefix (kubectl proxy, an ingress path).
    expect(res.body).not.toMatch(/(?:href|src)="\/(?!\/)/);
    for (const hook of ['id="verdict"', 'id="diagram"', 'data-waiting="app"', 'data-waiting="upstream"', 'id="connections"', 'id="handshake-chart"']) {
      expect(res.body).toContain(hook);
    }
  });

  it('GET /page/app.js and /page/style.css serve the assets with their types', async () => {
    const { app } = setup();
    cleanup.push(() => app.close());
    const js = await app.inject('/page/app.js');
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.body).toContain('fetch(`api/summary');
    // No request to an absolute path: fetch, EventSource and URLs are relative to the page.
    expect(js.body).not.toMatch(/(?:fetch|EventSource)\(\s*[`'"]\//);
    const css = await app.inject('/page/style.css');
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await app.inject('/page/../package.json')).statusCode).toBe(404);
    expect((await app.inject('/page/index.html')).statusCode).toBe(404);
  });

  it('the page loads nothing from outside synfin', () => {
    const { html, js, css } = readPageAssets();
    for (const text of [html, js, css]) {
      // The SVG namespace is an identifier, not a fetch; everything else must be relative.
      const urls = [...text.matchAll(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s'"`)]*/gi)].map((m) => m[0]);
      expect(urls.filter((u) => u !== 'http://www.w3.org/2000/svg')).toEqual([]);
      expect(text).not.toMatch(/@import|<iframe|fonts\.googleapis/i);
    }
    expect(html).not.toMatch(/<script(?![^>]*\bsrc="page\/app\.js")/); // no inline script
    expect(html).not.toMatch(/\sstyle="/); // no inline style (the CSP forbids it)
  });

  it('GET /api/summary returns the snapshot', async () => {
    const { app, hub, clock } = setup([
      { state: State.FIN_WAIT_2, createdAt: T0 - 90_000, lastActivityAt: T0 - 90_000, waitingOn: 'app', waitingSince: T0 - 60_000 },
      { state: State.ESTABLISHED, createdAt: T0 - 1000, lastActivityAt: T0, waitingOn: null, waitingSince: 0 },
    ]);
    cleanup.push(() => app.close());
    hub.stateChange(identity(1, 0), State.FIN_WAIT_1, State.FIN_WAIT_2, T0, T0);
    hub.handshake(identity(2, 0), 'ok', 2);
    clock.advance(1000);
    const res = await app.inject('/api/summary');
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const s = res.json();
    expect(s.states.FIN_WAIT_2).toBe(1);
    expect(s.states.LISTEN).toBe(1);
    expect(s.transitions).toEqual({ 'FIN_WAIT_1>FIN_WAIT_2': 1 });
    expect(s.waiting.app).toEqual({ count: 1, oldestSeconds: 61 });
    expect(s.handshakes.points).toHaveLength(1);
    expect(s.verdict.issues[0].kind).toBe('waiting_app');
  });

  it('GET /api/summary?since= returns only newer handshake seconds, and rejects a bad since', async () => {
    const { app, hub, clock } = setup();
    cleanup.push(() => app.close());
    for (let i = 0; i < 3; i++) {
      hub.handshake(identity(i, 0), 'ok', 1);
      clock.advance(1000);
    }
    const s = (await app.inject('/api/summary?since=1001')).json();
    expect(s.handshakes.points.map((p: number[]) => p[0])).toEqual([1002]);
    expect((await app.inject('/api/summary?since=soon')).statusCode).toBe(400);
    expect((await app.inject('/api/summary?colour=blue')).statusCode).toBe(400);
  });

  it('a missing asset fails the plugin at creation with ERR_PAGE_ASSETS', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `synfin-page-${process.pid}-`));
    try {
      fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
      const { summary } = setup();
      expect(() => livePage(summary, { assetsDir: dir })).toThrow(expect.objectContaining({ code: 'ERR_PAGE_ASSETS' }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The page's own module: its layout and arithmetic run without a DOM.
interface PageModule {
  NODES: Array<{ state: string; x: number; y: number; alias?: boolean }>;
  EDGES: Array<{ from: string; to: string; pts: number[][]; stub?: boolean }>;
  NODE_W: number;
  NODE_H: number;
  edgeRates(prev: unknown, cur: unknown): Record<string, number>;
  fmtRate(r: number): string;
  fmtAge(s: number | null): string;
}
const pageModulePath = '../../src/http/page/app.js';
const page = (await import(pageModulePath)) as PageModule;

describe('live page diagram', () => {
  it('draws each of the eleven states once (plus the figure\'s second CLOSED)', () => {
    const states = page.NODES.filter((n) => !n.alias).map((n) => n.state);
    expect([...states].sort()).toEqual([...STATE_NAMES].sort());
    expect(page.NODES.filter((n) => n.alias).map((n) => n.state)).toEqual(['CLOSED']);
  });

  it('draws an arrow for every transition the stack counts, and each edge once', () => {
    const drawn = page.EDGES.map((e) => `${e.from}>${e.to}`);
    for (const [from, to] of TRANSITIONS) expect(drawn).toContain(`${from}>${to}`);
    expect(new Set(drawn).size).toBe(drawn.length);
  });

  it('every arrow leaves its own box and ends on the target box', () => {
    const boxes = (state: string) => page.NODES.filter((n) => n.state === state);
    const onEdgeOf = (p: number[], n: { x: number; y: number }) => {
      const [x, y] = p as [number, number];
      const l = n.x - page.NODE_W / 2;
      const r = n.x + page.NODE_W / 2;
      const t = n.y - page.NODE_H / 2;
      const b = n.y + page.NODE_H / 2;
      const inX = x >= l && x <= r;
      const inY = y >= t && y <= b;
      return (inX && (y === t || y === b)) || (inY && (x === l || x === r));
    };
    for (const e of page.EDGES) {
      const first = e.pts[0]!;
      const last = e.pts[e.pts.length - 1]!;
      expect(boxes(e.from).some((n) => onEdgeOf(first, n)), `${e.from}>${e.to} starts on ${e.from}`).toBe(true);
      if (!e.stub) expect(boxes(e.to).some((n) => onEdgeOf(last, n)), `${e.from}>${e.to} ends on ${e.to}`).toBe(true);
    }
  });

  it('edge rates are the count increase over the time between snapshots', () => {
    const prev = { at: 1000, transitions: { 'ESTABLISHED>CLOSE_WAIT': 10 } };
    const cur = { at: 3000, transitions: { 'ESTABLISHED>CLOSE_WAIT': 14, 'TIME_WAIT>CLOSED': 1 } };
    expect(page.edgeRates(prev, cur)).toEqual({ 'ESTABLISHED>CLOSE_WAIT': 2, 'TIME_WAIT>CLOSED': 0.5 });
    expect(page.edgeRates(null, cur)).toEqual({});
  });

  it('a counter that went backwards (synfin restarted) counts from zero', () => {
    const prev = { at: 1000, transitions: { 'ESTABLISHED>CLOSE_WAIT': 10 } };
    const cur = { at: 2000, transitions: { 'ESTABLISHED>CLOSE_WAIT': 3 } };
    expect(page.edgeRates(prev, cur)).toEqual({ 'ESTABLISHED>CLOSE_WAIT': 3 });
  });

  it('formats rates and ages for reading', () => {
    expect(page.fmtRate(0)).toBe('');
    expect(page.fmtRate(0.05)).toBe('<0.1/s');
    expect(page.fmtRate(2.25)).toBe('2.3/s');
    expect(page.fmtRate(140.4)).toBe('140/s');
    expect(page.fmtAge(3.21)).toBe('3.2 s');
    expect(page.fmtAge(754)).toBe('12 min 34 s');
    expect(page.fmtAge(null)).toBe('–');
  });
});
