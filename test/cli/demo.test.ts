/**
 * `synfin demo` (npm start) shows what synfin is for, end to end: its leaking client's
 * connections wait on the app under a named service, the page and the API name the process that
 * holds them (the demo client, in its own namespace), and the flight recorder has connections
 * closed first by each side. Ctrl-C removes everything the demo made.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDemo, until, type RunningDemo } from '../helpers/demo.js';
import { describeIfTun } from '../helpers/root.js';

interface Row {
  id: number;
  service: string;
  waitingOn: string | null;
  appProcess: { pid: number; command: string; fd: number } | null;
  appProcessSource: string;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return (await res.json()) as T;
}

describeIfTun('synfin demo', () => {
  let demo: RunningDemo;
  let base = '';
  let ns = '';

  beforeAll(async () => {
    demo = await startDemo();
    ({ base, ns } = demo);
  }, 40_000);

  afterAll(async () => {
    await demo?.stop();
  });

  it('names the service and the process holding the leaked connections (the client in the demo namespace)', async () => {
    const rows = await until('a leaked connection named by its process', 30_000, async () => {
      const page = await getJson<{ connections: Row[] }>(`${base}/api/connections?waitingOn=app`);
      const named = page.connections.filter((r) => r.appProcess !== null);
      return named.length > 0 ? named : undefined;
    });
    // The client is the only node process in the demo namespace: its pid is what `ip netns pids` lists.
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    for (const r of rows) {
      expect(r.service).toBe('demo-leaky');
      expect(r.appProcessSource).toBe('kernel');
      expect(r.appProcess!.command).toBe('node');
      expect(pids).toContain(r.appProcess!.pid);
      expect(r.appProcess!.fd).toBeGreaterThan(2);
    }
  }, 40_000);

  it('the history has connections closed first by the app and by the upstream', async () => {
    const seen = await until('both closers in the history', 30_000, async () => {
      const h = await getJson<{ connections: Array<{ closedFirstBy: string; service: string }> }>(`${base}/api/history?limit=1000`);
      const by = new Set(h.connections.map((r) => r.closedFirstBy));
      return by.has('app') && by.has('upstream') ? h.connections : undefined;
    });
    expect(seen.some((r) => r.service === 'demo')).toBe(true);
  }, 40_000);

  it('Ctrl-C removes the namespace and exits 0', async () => {
    expect(await demo.stop()).toBe(0);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(ns);
  }, 20_000);
});
