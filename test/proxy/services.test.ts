/**
 * Named services end to end: real kernel clients in a namespace reach servers on this host through
 * synfin, and what they do is counted under the service of their destination (--service and
 * --service-file), the rest under `other`; /api/connections rows and /api/events carry `service`,
 * `?service=` filters, and a reload of the file renames the series.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue, startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

const CLIENT = path.join(import.meta.dirname, '../helpers/kernel-client.mjs');

interface Row {
  id: number;
  state: string;
  destination: string;
  service: string;
  waitingOn: string | null;
}
interface Page {
  count: number;
  connections: Row[];
}

async function waitFor<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T = await fn();
  while (!ok(last)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
    last = await fn();
  }
  return last;
}

/** A server on 127.0.0.1: `echo` echoes and keeps the connection open; `reply-close` echoes the first chunk and closes. */
async function server(kind: 'echo' | 'reply-close'): Promise<{ server: net.Server; port: number }> {
  const s = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.on('error', () => {});
    sock.on('data', (d) => {
      if (kind === 'echo') sock.write(d);
      else sock.end(d);
    });
    sock.on('end', () => sock.end());
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { server: s, port: (s.address() as AddressInfo).port };
}

describeIfTun('named services end to end', () => {
  let env: SynfinEnv;
  let named: { server: net.Server; port: number };
  let filed: { server: net.Server; port: number };
  let unnamed: { server: net.Server; port: number };
  let refusedPort: number;
  let dir: string;
  let serviceFile: string;
  const holders: Array<{ kill(): void }> = [];

  beforeAll(async () => {
    named = await server('echo');
    filed = await server('reply-close');
    unnamed = await server('echo');
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    refusedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-services-e2e-'));
    serviceFile = path.join(dir, 'services.yaml');
    fs.writeFileSync(serviceFile, `- name: team/filed\n  cidr: 198.19.0.0/16\n  ports: [${filed.port}]\n- name: refusing\n  cidr: 198.19.0.0/16\n  ports: ${refusedPort}\n`);
    env = await startSynfinEnv({ services: [`named=198.19.0.0/16:${named.port}`], serviceFile });
  }, 60_000);

  afterAll(async () => {
    for (const h of holders) h.kill();
    await env?.close();
    for (const s of [named, filed, unnamed]) s?.server.close();
    destroyAllNetns();
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  function hold(port: number, count: number): Promise<void> {
    const child = env.ns.spawn(process.execPath, [CLIENT, 'hold', env.serverAddr, String(port), String(count), 'never-close']);
    holders.push({ kill: () => child.kill('SIGKILL') });
    return new Promise((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('"ready"')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`hold exited with ${code}`)));
    });
  }

  it('exports every service at zero before the first connection', async () => {
    const m = await env.metrics();
    for (const service of ['named', 'team/filed', 'refusing', 'other']) {
      expect(m).toContain(`synfin_service_connections{service="${service}",state="ESTABLISHED"} 0`);
      expect(m).toContain(`synfin_service_connections_closed_total{service="${service}",reason="fin"} 0`);
      expect(m).toContain(`synfin_service_connect_duration_seconds_count{service="${service}",result="ok"} 0`);
    }
  });

  it('counts held connections under their service, the rest under other, and ?service= filters the rows', async () => {
    await hold(named.port, 3);
    await hold(unnamed.port, 2);
    await hold(filed.port, 4);
    const all = await waitFor('9 connections', () => env.api<Page>('/api/connections'), (p) => p.count === 9 && p.connections.filter((r) => r.service === 'team/filed').every((r) => r.waitingOn === 'app'));
    for (const r of all.connections) {
      const port = Number(r.destination.slice(r.destination.lastIndexOf(':') + 1));
      expect(r.service).toBe(port === named.port ? 'named' : port === filed.port ? 'team/filed' : 'other');
    }
    const byNamed = await env.api<Page>('/api/connections?service=named');
    expect(byNamed.count).toBe(3);
    expect(byNamed.connections.every((r) => r.service === 'named' && r.state === 'ESTABLISHED')).toBe(true);
    expect((await env.api<Page>('/api/connections?service=other')).count).toBe(2);
    const leaking = await env.api<Page>(`/api/connections?service=${encodeURIComponent('team/filed')}&waitingOn=app`);
    expect(leaking.count).toBe(4);
    expect((await env.api<Page>('/api/connections?service=nobody')).count).toBe(0);

    const m = await env.metrics();
    expect(metricValue(m, 'synfin_service_connections', { service: 'named', state: 'ESTABLISHED' })).toBe(3);
    expect(metricValue(m, 'synfin_service_connections', { service: 'other', state: 'ESTABLISHED' })).toBe(2);
    expect(metricValue(m, 'synfin_service_connections', { service: 'team/filed' })).toBe(4);
    expect(metricValue(m, 'synfin_service_connections_waiting', { service: 'team/filed', on: 'app' })).toBe(4);
    expect(metricValue(m, 'synfin_service_connections_waiting', { service: 'named' })).toBe(0);
    expect(metricValue(m, 'synfin_service_connections_waiting', { service: 'other' })).toBe(0);
    expect(metricValue(m, 'synfin_service_oldest_waiting_seconds', { service: 'team/filed', on: 'app' })).toBeGreaterThan(0);
    // The per-service gauges add up to the global ones.
    expect(metricValue(m, 'synfin_service_connections', { state: 'ESTABLISHED' })).toBe(metricValue(m, 'synfin_tcp_connections', { state: 'ESTABLISHED' }));
    expect(metricValue(m, 'synfin_service_connections_waiting', { on: 'app' })).toBe(metricValue(m, 'synfin_connections_waiting', { on: 'app' }));
    for (const h of holders.splice(0)) h.kill();
    // Their closes are this test's, not the next one's.
    await waitFor('an empty table', () => env.api<Page>('/api/connections'), (p) => p.count === 0);
  }, 60_000);

  it('counts closes, bytes, connect times and refusals per service', async () => {
    const before = await env.metrics();
    const r = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(named.port), '30', '5', 'client']);
    expect(JSON.parse(r.stdout)).toEqual({ ok: 30, failed: 0, errors: {} });
    const o = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(unnamed.port), '7', '1', 'client']);
    expect(JSON.parse(o.stdout).ok).toBe(7);
    const refused = await env.ns.exec('nc', ['-z', '-w', '3', env.serverAddr, String(refusedPort)]);
    expect(refused.code).not.toBe(0);
    // Each connection closes once its TIME-WAIT (2 × --msl 0.25 s) is over.
    const m = await waitFor(
      'the closes counted',
      () => env.metrics(),
      (t) => metricValue(t, 'synfin_service_connections_closed_total', { service: 'named' }) - metricValue(before, 'synfin_service_connections_closed_total', { service: 'named' }) >= 30,
    );
    const delta = (name: string, labels: Record<string, string>) => metricValue(m, name, labels) - metricValue(before, name, labels);
    expect(delta('synfin_service_connect_duration_seconds_count', { service: 'named', result: 'ok' })).toBe(30);
    expect(delta('synfin_service_connect_duration_seconds_count', { service: 'other', result: 'ok' })).toBe(7);
    expect(delta('synfin_service_connect_duration_seconds_count', { service: 'refusing', result: 'refused' })).toBe(1);
    expect(delta('synfin_service_connect_duration_seconds_count', { service: 'named', result: 'refused' })).toBe(0);
    // "hello N\n" each way: 8 bytes for N < 10, 9 for 10..29.
    expect(delta('synfin_service_bytes_total', { service: 'named', direction: 'client_to_upstream' })).toBe(10 * 8 + 20 * 9);
    expect(delta('synfin_service_bytes_total', { service: 'named', direction: 'upstream_to_client' })).toBe(10 * 8 + 20 * 9);
    expect(delta('synfin_service_bytes_total', { service: 'other', direction: 'client_to_upstream' })).toBe(7 * 8);
    expect(delta('synfin_service_connections_closed_total', { service: 'named', reason: 'fin' })).toBe(30);
    // The refused SYN got a RST: counted as sent on the service's connection.
    expect(delta('synfin_service_resets_total', { service: 'refusing', direction: 'sent' })).toBe(1);
    expect(delta('synfin_service_connections_closed_total', { service: 'refusing', reason: 'upstream_failed' })).toBe(1);
    // The flight recorder names the same services.
    const history = await env.api<{ count: number; connections: Array<{ service: string; destination: string }> }>('/api/history?service=named&limit=1000');
    expect(history.count).toBeGreaterThanOrEqual(30);
    expect(history.connections.every((r) => r.service === 'named' && r.destination.endsWith(`:${named.port}`))).toBe(true);
    const refusedHistory = await env.api<{ count: number }>('/api/history?service=refusing');
    expect(refusedHistory.count).toBe(1);
  }, 60_000);

  it('events on /api/events carry the service', async () => {
    const controller = new AbortController();
    const res = await fetch(`${env.synfin.listenUrl}/api/events`, { signal: controller.signal });
    const reader = res.body!.getReader();
    const seen: Array<{ service: string; destination: string }> = [];
    const reading = (async () => {
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += Buffer.from(value).toString();
        for (const m of buf.matchAll(/^data: (.*)$/gm)) seen.push(JSON.parse(m[1]!) as { service: string; destination: string });
        buf = buf.slice(buf.lastIndexOf('\n') + 1);
        if (seen.some((e) => e.service === 'named') && seen.some((e) => e.service === 'other')) return;
      }
    })();
    await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(named.port), '1', '1', 'client']);
    await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(unnamed.port), '1', '1', 'client']);
    await Promise.race([reading, new Promise((r) => setTimeout(r, 10_000))]);
    controller.abort();
    const namedEvents = seen.filter((e) => e.service === 'named');
    expect(namedEvents.length).toBeGreaterThan(0);
    expect(namedEvents.every((e) => e.destination.endsWith(`:${named.port}`))).toBe(true);
    expect(seen.filter((e) => e.service === 'other').every((e) => e.destination.endsWith(`:${unnamed.port}`))).toBe(true);
  }, 30_000);

  it('a reload of the file renames the series: the old name goes, the new one starts at zero', async () => {
    fs.writeFileSync(serviceFile, `- name: team/renamed\n  cidr: 198.19.0.0/16\n  ports: ${filed.port}\n`);
    const m = await waitFor('the renamed service', () => env.metrics(), (t) => t.includes('service="team/renamed"'));
    expect(m).not.toContain('service="team/filed"');
    expect(m).not.toContain('service="refusing"');
    expect(metricValue(m, 'synfin_service_connections_closed_total', { service: 'team/renamed' })).toBe(0);
    // --service stays in front, with its counts.
    expect(metricValue(m, 'synfin_service_connections_closed_total', { service: 'named', reason: 'fin' })).toBeGreaterThanOrEqual(30);
    expect(env.synfin.services.serviceOf(`${env.serverAddr}:${filed.port}`)).toBe('team/renamed');
    await hold(filed.port, 1);
    const rows = await waitFor('the renamed row', () => env.api<Page>(`/api/connections?service=${encodeURIComponent('team/renamed')}`), (p) => p.count === 1);
    expect(rows.connections[0]!.service).toBe('team/renamed');
    for (const h of holders.splice(0)) h.kill();
  }, 30_000);
});

describeIfTun('named services end to end, IPv6', () => {
  let env: SynfinEnv;
  let named: { server: net.Server; port: number };
  let unnamed: { server: net.Server; port: number };

  beforeAll(async () => {
    const listen = async (): Promise<{ server: net.Server; port: number }> => {
      const s = net.createServer((sock) => {
        sock.on('error', () => {});
        sock.on('data', (d) => sock.write(d));
        sock.on('end', () => sock.end());
      });
      await new Promise<void>((r) => s.listen(0, '::1', r));
      return { server: s, port: (s.address() as AddressInfo).port };
    };
    named = await listen();
    unnamed = await listen();
    env = await startSynfinEnv({ services: [`v6=[fd00::/16]:${named.port}`] }, { ipv6: true });
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    named?.server.close();
    unnamed?.server.close();
    destroyAllNetns();
  });

  it('counts IPv6 connections under the service of their network and port, the rest under other', async () => {
    const a = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(named.port), '5', '1', 'client']);
    expect(JSON.parse(a.stdout).ok).toBe(5);
    const b = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(unnamed.port), '3', '1', 'client']);
    expect(JSON.parse(b.stdout).ok).toBe(3);
    const m = await waitFor('the connect times', () => env.metrics(), (t) => metricValue(t, 'synfin_service_connect_duration_seconds_count', { service: 'other', result: 'ok' }) >= 3);
    expect(metricValue(m, 'synfin_service_connect_duration_seconds_count', { service: 'v6', result: 'ok' })).toBe(5);
    expect(metricValue(m, 'synfin_service_connect_duration_seconds_count', { service: 'other', result: 'ok' })).toBe(3);
    expect(env.synfin.services.serviceOf(`[${env.serverAddr}]:${named.port}`)).toBe('v6');
  }, 60_000);
});
