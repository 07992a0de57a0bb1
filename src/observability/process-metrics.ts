/**
 * prom-client's default process and Node.js metrics, with the three whose cost grows with the
 * number of open sockets replaced by cheaper collectors of the same names and meaning:
 *
 * - process_open_fds: prom-client lists /proc/self/fd with readdirSync (an array of 10,000
 *   strings for 10,000 sockets, ~10 ms measured here); the addon counts the directory's records
 *   without naming them (<1 ms).
 * - nodejs_active_handles and nodejs_active_handles_total: prom-client calls
 *   process._getActiveHandles() once for each of the two; here one call per scrape serves both.
 */
import client from 'prom-client';
import fs from 'node:fs';
import { loadAddon } from '../tun/native.js';

const REPLACED = ['process_open_fds', 'nodejs_active_handles', 'nodejs_active_handles_total'] as const;

type ActiveHandlesProcess = NodeJS.Process & { _getActiveHandles?: () => unknown[] };

function openFdCount(): number {
  try {
    return loadAddon().openFdCount();
  } catch {
    // No addon (a build without it): the readdir prom-client does, minus its own descriptor.
    try {
      return fs.readdirSync('/proc/self/fd').length - 1;
    } catch {
      return -1;
    }
  }
}

/** Registers the default metrics in each registry, the costly ones replaced (see above). */
export function registerProcessMetrics(registries: client.Registry[]): void {
  for (const r of registries) {
    client.collectDefaultMetrics({ register: r });
    for (const name of REPLACED) r.removeSingleMetric(name);
  }

  new client.Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    registers: registries,
    collect() {
      const n = openFdCount();
      if (n >= 0) this.set(n);
    },
  });

  // Both gauges are collected in prom-client's one synchronous pass over the registry: the list
  // of handles is taken once and dropped when that pass is over.
  const proc = process as ActiveHandlesProcess;
  let byType: Map<string, number> | null = null;
  let total = 0;
  const forget = (): void => {
    byType = null;
  };
  const take = (): Map<string, number> => {
    if (byType !== null) return byType;
    const handles = proc._getActiveHandles?.() ?? [];
    const m = new Map<string, number>();
    for (const h of handles) {
      const name = (h as { constructor?: { name?: string } } | null)?.constructor?.name;
      if (name !== undefined) m.set(name, (m.get(name) ?? 0) + 1);
    }
    total = handles.length;
    byType = m;
    queueMicrotask(forget);
    return m;
  };
  new client.Gauge({
    name: 'nodejs_active_handles',
    help: 'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.',
    labelNames: ['type'] as const,
    registers: registries,
    collect() {
      this.reset();
      for (const [type, n] of take()) this.set({ type }, n);
    },
  });
  new client.Gauge({
    name: 'nodejs_active_handles_total',
    help: 'Total number of active handles.',
    registers: registries,
    collect() {
      take();
      this.set(total);
    },
  });
}
