/**
 * The default process metrics whose prom-client versions cost milliseconds per scrape with
 * thousands of sockets, replaced by cheaper collectors of the same names and meaning.
 */
import fs from 'node:fs';
import net from 'node:net';
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { openFdCount, registerProcessMetrics, tallyActiveResources } from '../../src/observability/process-metrics.js';

function sample(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (m === null) throw new Error(`${name} not in the scrape`);
  return Number(m[1]);
}

describe('process metrics', () => {
  it('openFdCount equals what a listing of /proc/self/fd counts, and follows an open and a close', () => {
    const listed = (): number => fs.readdirSync('/proc/self/fd').length - 1;
    expect(openFdCount()).toBe(listed());
    const fds = Array.from({ length: 50 }, () => fs.openSync('/dev/null', 'r'));
    try {
      expect(openFdCount()).toBe(listed());
    } finally {
      const before = openFdCount();
      for (const fd of fds) fs.closeSync(fd);
      expect(openFdCount()).toBe(before - 50);
    }
  });

  it('counts handles apart from requests in flight, timers and immediates, as process._getActiveHandles() does', async () => {
    const a = new client.Registry();
    registerProcessMetrics([a]);
    const proc = process as unknown as { _getActiveHandles(): unknown[]; _getActiveRequests(): unknown[] };
    const timers = Array.from({ length: 7 }, () => setTimeout(() => {}, 60_000));
    const unrefd = setInterval(() => {}, 60_000).unref();
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    // Requests in flight (file reads through the thread pool) at the moment of the scrape.
    const reads = Array.from({ length: 5 }, () => fs.promises.readFile('/proc/self/status'));
    setImmediate(() => {});
    try {
      const requestsNow = proc._getActiveRequests().length;
      const handlesNow = proc._getActiveHandles().length;
      const text = await a.metrics();
      expect(requestsNow).toBeGreaterThan(0);
      expect(sample(text, 'nodejs_active_handles_total')).toBe(handlesNow);
      const resources = [...text.matchAll(/^nodejs_active_resources\{type="([^"]+)"\} (\d+)$/gm)];
      expect(Number(resources.find((m) => m[1] === 'Timeout')?.[2])).toBeGreaterThanOrEqual(7);
      await Promise.all(reads);
    } finally {
      for (const t of timers) clearTimeout(t);
      clearInterval(unrefd);
      await new Promise((r) => server.close(r));
    }
  });

  it('tallyActiveResources: the handles are the run between the requests and the trailing timers', () => {
    const info = ['FSReqCallback', 'ConnectWrap', 'TCPServerWrap', 'TCPSocketWrap', 'TCPSocketWrap', 'TTYWrap', 'Timeout', 'Timeout', 'Immediate'];
    const t = tallyActiveResources(info, 2);
    expect(t.resourcesTotal).toBe(9);
    expect(t.handlesTotal).toBe(4);
    expect(Object.fromEntries(t.handles)).toEqual({ TCPServerWrap: 1, TCPSocketWrap: 2, TTYWrap: 1 });
    expect(Object.fromEntries(t.resources)).toEqual({ FSReqCallback: 1, ConnectWrap: 1, TCPServerWrap: 1, TCPSocketWrap: 2, TTYWrap: 1, Timeout: 2, Immediate: 1 });
    expect(tallyActiveResources(['Timeout'], 0).handlesTotal).toBe(0);
    expect(tallyActiveResources([], 0).handlesTotal).toBe(0);
    // More requests than entries (the list changed between the two calls): no negative count.
    expect(tallyActiveResources(['FSReqCallback'], 3).handlesTotal).toBe(0);
  });

  it('scrapes each replaced metric once, with true values: fds, and handles by type summing to the total', async () => {
    const a = new client.Registry();
    const b = new client.Registry();
    registerProcessMetrics([a, b]);
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const sockets = Array.from({ length: 20 }, () => net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'));
    await Promise.all(sockets.map((s) => new Promise((r) => s.once('connect', r))));
    try {
      for (const reg of [a, b]) {
        const text = await reg.metrics();
        for (const name of ['process_open_fds', 'nodejs_active_handles', 'nodejs_active_handles_total', 'nodejs_active_resources', 'nodejs_active_resources_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds']) {
          expect(text.match(new RegExp(`^# TYPE ${name} `, 'gm'))?.length, name).toBe(1);
        }
        const fds = sample(text, 'process_open_fds');
        expect(Math.abs(fds - openFdCount())).toBeLessThanOrEqual(2);
        expect(fds).toBeGreaterThanOrEqual(41); // 20 client sockets, their 20 accepted peers, the listener
        const total = sample(text, 'nodejs_active_handles_total');
        expect(total).toBe((process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length);
        const byType = [...text.matchAll(/^nodejs_active_handles\{type="([^"]+)"\} (\d+)$/gm)];
        expect(byType.reduce((n, m) => n + Number(m[2]), 0)).toBe(total);
        // Labelled by C++ class: the 20 client sockets (their peers may not be accepted yet), the listener.
        expect(Number(byType.find((m) => m[1] === 'TCPSocketWrap')?.[2])).toBeGreaterThanOrEqual(20);
        expect(Number(byType.find((m) => m[1] === 'TCPServerWrap')?.[2])).toBeGreaterThanOrEqual(1);
        expect(byType.some((m) => m[1] === 'Timeout' || m[1] === 'Immediate')).toBe(false);
        const resources = sample(text, 'nodejs_active_resources_total');
        expect(resources).toBeGreaterThanOrEqual(20);
        const resByType = [...text.matchAll(/^nodejs_active_resources\{type="([^"]+)"\} (\d+)$/gm)];
        expect(resByType.reduce((n, m) => n + Number(m[2]), 0)).toBe(resources);
        expect(Number(resByType.find((m) => m[1] === 'TCPSocketWrap')?.[2])).toBeGreaterThanOrEqual(20);
      }
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
