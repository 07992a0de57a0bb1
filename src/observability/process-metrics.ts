/**
 * prom-client's default process and Node.js metrics, with those whose cost grows with the number
 * of open sockets replaced by cheaper collectors of the same names and meaning:
 *
 * - process_open_fds: prom-client lists /proc/self/fd with readdirSync, and the kernel takes
 *   ~10 ms to list 10,000 descriptors (measured here). Since Linux 6.2 a stat() of that directory
 *   reports the number of open descriptors as its size (fs/proc/fd.c, proc_fd_getattr): 25 µs.
 *   Older kernels report 0 there, and get the listing.
 * - nodejs_active_handles{,_total} and nodejs_active_resources{,_total}: prom-client lists the
 *   handles (and the resources) once for each gauge of a pair; here one list per scrape serves
 *   both gauges of the pair.
 */
import client from 'prom-client';
import fs from 'node:fs';

const REPLACED = [
  'process_open_fds',
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
] as const;

type IntrospectableProcess = NodeJS.Process & {
  _getActiveHandles?: () => unknown[];
  getActiveResourcesInfo?: () => string[];
};

export function openFdCount(): number {
  try {
    const size = fs.statSync('/proc/self/fd').size;
    if (size > 0) return size;
    // The listing includes the descriptor that reads it.
    return fs.readdirSync('/proc/self/fd').length - 1;
  } catch {
    return -1;
  }
}

/**
 * A count by type taken at most once per scrape: prom-client calls every collect() in one
 * synchronous pass over the registry, so the tally is dropped in a microtask after it. Items are
 * grouped by `keyOf` first and named once per group: for handles the key is the prototype, as
 * reading `constructor` from 10,000 sockets of many shapes is a slow, megamorphic lookup each.
 */
function perScrapeTally<K>(
  list: () => readonly unknown[],
  keyOf: (item: unknown) => K,
  nameOf: (key: K) => string | undefined,
): () => { byType: Map<string, number>; total: number } {
  let tally: { byType: Map<string, number>; total: number } | null = null;
  const forget = (): void => {
    tally = null;
  };
  return () => {
    if (tally !== null) return tally;
    const items = list();
    const byKey = new Map<K, number>();
    for (let i = 0; i < items.length; i++) {
      const key = keyOf(items[i]);
      byKey.set(key, (byKey.get(key) ?? 0) + 1);
    }
    const byType = new Map<string, number>();
    for (const [key, n] of byKey) {
      const type = nameOf(key);
      if (type !== undefined) byType.set(type, (byType.get(type) ?? 0) + n);
    }
    tally = { byType, total: items.length };
    queueMicrotask(forget);
    return tally;
  };
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

  const proc = process as IntrospectableProcess;
  const pairs = [
    {
      name: 'nodejs_active_handles',
      help: 'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.',
      totalHelp: 'Total number of active handles.',
      tally: proc._getActiveHandles === undefined ? null : perScrapeTally(
        () => proc._getActiveHandles!(),
        (h) => (h !== null && typeof h === 'object' ? (Object.getPrototypeOf(h) as object | null) : null),
        (proto) => (proto as { constructor?: { name?: string } } | null)?.constructor?.name,
      ),
    },
    {
      name: 'nodejs_active_resources',
      help: 'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
      totalHelp: 'Total number of active resources.',
      tally: proc.getActiveResourcesInfo === undefined ? null : perScrapeTally(
        () => proc.getActiveResourcesInfo!(),
        (type) => type as string,
        (type) => type,
      ),
    },
  ];
  for (const { name, help, totalHelp, tally } of pairs) {
    if (tally === null) continue; // not in this Node.js, as prom-client would skip it
    new client.Gauge({
      name,
      help,
      labelNames: ['type'] as const,
      registers: registries,
      collect() {
        this.reset();
        for (const [type, n] of tally().byType) this.set({ type }, n);
      },
    });
    new client.Gauge({
      name: `${name}_total`,
      help: totalHelp,
      registers: registries,
      collect() {
        this.set(tally().total);
      },
    });
  }
}
