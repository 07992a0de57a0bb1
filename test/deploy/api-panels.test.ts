/**
 * The dashboards' panels that read synfin's API (through the Infinity plugin, not Prometheus)
 * against a running `synfin demo`, whose leaking client's sockets are named by their process:
 * the URL each panel fetches (with $instance set to the demo's address) answers, its root
 * selector is an array of rows, and every column path is in every row, the nested
 * appProcess.pid/command/fd included; the "held by" column the panel computes reads the same
 * as the live page's words for those rows.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDemo, until, type RunningDemo } from '../helpers/demo.js';
import { describeIfTun } from '../helpers/root.js';
import { readRepoFile } from './code.js';

const INFINITY = 'yesoreyeram-infinity-datasource';
const FILES = ['synfin-overview.json', 'synfin-leaks.json', 'synfin-fleet.json', 'synfin-services.json'];

interface Target {
  url?: string;
  root_selector?: string;
  columns?: Array<{ selector: string; text: string; type: string }>;
  computed_columns?: Array<{ selector: string; text: string; type: string }>;
}
interface Panel {
  title?: string;
  datasource?: { type?: string };
  targets?: Target[];
}

const apiTargets = FILES.flatMap((file) =>
  (JSON.parse(readRepoFile('grafana', 'dashboards', file)) as { panels: Panel[] }).panels
    .filter((p) => p.datasource?.type === INFINITY)
    .flatMap((p) => (p.targets ?? []).map((t) => ({ where: `${file} "${p.title}"`, t }))),
);

/** A dotted path (Infinity's column selector) in a row: present at each step, or under a null parent. */
function lookup(row: unknown, selector: string): { present: boolean; value: unknown } {
  let node = row;
  for (const key of selector.split('.')) {
    if (node === null) return { present: true, value: null };
    if (typeof node !== 'object' || !(key in node)) return { present: false, value: undefined };
    node = (node as Record<string, unknown>)[key];
  }
  return { present: true, value: node };
}

/**
 * The panels' "held by" expressions, evaluated for one row: only the shape the dashboards use
 * (`source == 'kernel' ? 'a' + col + ... : 'b' + col`), so a change of the expression that this
 * does not understand fails here rather than passing unread.
 */
function evalHeldBy(expr: string, cols: Record<string, unknown>): string {
  const m = /^(\w+) == '(\w+)' \? (.+) : (.+)$/.exec(expr);
  if (m === null) throw new Error(`unexpected expression ${expr}`);
  const concat = (s: string): string =>
    s.split(' + ').map((part) => {
      const lit = /^'([^']*)'$/.exec(part);
      if (lit !== null) return lit[1]!;
      if (!/^\w+$/.test(part) || !(part in cols)) throw new Error(`unknown term ${part} in ${expr}`);
      return String(cols[part]);
    }).join('');
  return cols[m[1]!] === m[2] ? concat(m[3]!) : concat(m[4]!);
}

describeIfTun('dashboards: panels reading the API against synfin demo', () => {
  let demo: RunningDemo;
  let instance = '';

  beforeAll(async () => {
    demo = await startDemo();
    instance = demo.instance;
  }, 40_000);

  afterAll(async () => {
    await demo?.stop();
  });

  it('api panels url selector and columns exist in the json and held by names the process', async () => {
    expect(apiTargets.length).toBeGreaterThanOrEqual(2);
    for (const { where, t } of apiTargets) {
      // What Grafana's server fetches for this instance (the panel repeats per $instance).
      const url = String(t.url).replaceAll('${instance}', instance);
      expect(url, where).toMatch(/^http:\/\/[^$]+$/);
      const rows = await until(`${where}: a row named by its process`, 30_000, async () => {
        const res = await fetch(url);
        if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
        const body = (await res.json()) as Record<string, unknown>;
        const list = body[String(t.root_selector)];
        if (!Array.isArray(list)) throw new Error(`${url}: no array at ${t.root_selector}`);
        return list.some((r: { appProcess?: unknown }) => r.appProcess !== null) ? (list as Array<Record<string, unknown>>) : undefined;
      });
      for (const row of rows) {
        const cols: Record<string, unknown> = {};
        for (const c of t.columns ?? []) {
          const { present, value } = lookup(row, c.selector);
          expect(present, `${where}: column ${c.selector} in ${JSON.stringify(row)}`).toBe(true);
          if (value !== null) expect(typeof value, `${where}: ${c.selector}`).toBe(c.type === 'number' ? 'number' : 'string');
          cols[c.text] = value;
        }
        const heldBy = t.computed_columns?.find((c) => c.text === 'heldBy');
        if (heldBy === undefined) continue;
        const p = row.appProcess as { pid: number; command: string; fd: number } | null;
        // The live page's words (src/http/page/app.js heldBy), without its "for …".
        const want = p !== null ? `held by pid ${p.pid} ${p.command}, fd ${p.fd}` : `no process: ${String(row.appProcessSource)}`;
        expect(evalHeldBy(heldBy.selector, cols), where).toBe(want);
      }
      // The demo's leaking client: a node process holding the socket.
      const named = rows.filter((r) => r.appProcess !== null);
      expect(named.length, where).toBeGreaterThan(0);
      for (const r of named) {
        expect(r.appProcessSource).toBe('kernel');
        expect((r.appProcess as { command: string }).command).toBe('node');
      }
    }
  }, 60_000);
});

