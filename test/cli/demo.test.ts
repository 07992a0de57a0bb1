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
    // Other demo connections wait on the app for a moment too (a keep-alive connection the server
    // closed, before the client's agent closes its side): the leaked ones are those of its service.
    let waiting: Row[] = [];
    const rows = await until('a leaked connection named by its process', 30_000, async () => {
      const page = await getJson<{ connections: Row[] }>(`${base}/api/connections?waitingOn=app`);
      waiting = page.connections;
      const named = page.connections.filter((r) => r.appProcess !== null && r.service === 'demo-leaky');
      return named.length > 0 ? named : undefined;
    });
    for (const r of waiting) expect(['demo-leaky', 'demo']).toContain(r.service);
    // The client is the only node process in the demo namespace: its pid is what `ip netns pids` lists.
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    for (const r of rows) {
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

  it('a second SIGTERM during the shutdown (as coreutils timeout sends) still removes the namespace', async () => {
    const second = await startDemo({ logLevel: 'info' });
    try {
      // The second as soon as the first has started the shutdown (synfin logs it at info), which
      // takes only ~0.1 s here: on the line's arrival, not by polling.
      const shuttingDown = new Promise<void>((resolve) => {
        const onData = (d: Buffer): void => {
          if (!d.toString().includes('shutting down')) return;
          second.child.stdout!.off('data', onData);
          second.child.kill('SIGTERM');
          resolve();
        };
        second.child.stdout!.on('data', onData);
      });
      second.child.kill('SIGTERM');
      await shuttingDown;
      const code = await new Promise<number | null>((r) => (second.child.exitCode !== null ? r(second.child.exitCode) : second.child.once('exit', (c) => r(c))));
      // Exited by itself (143 when the second signal cut the shutdown short, 0 when it had finished), not killed by the signal.
      expect([0, 143]).toContain(code);
      expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(second.ns);
    } finally {
      await second.stop();
      try {
        execFileSync('ip', ['netns', 'del', second.ns], { stdio: 'ignore' });
      } catch {
        // Removed by the demo, as the test expects.
      }
    }
  }, 60_000);
});
