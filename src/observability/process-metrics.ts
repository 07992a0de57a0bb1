/**
 * prom-client's default process and Node.js metrics, with those whose cost grows with the number
 * of open sockets replaced by cheaper collectors of the same names and meaning:
 *
 * - process_open_fds: prom-client lists /proc/self/fd with readdirSync, and the kernel takes
 *   ~10 ms to list 10,000 descriptors (measured here). Since Linux 6.2 a stat() of that directory
 *   reports the number of open descriptors as its size (fs/proc/fd.c, proc_fd_getattr): 25 µs.
 *   Older kernels report 0 there, and get the listing.
 * - nodejs_active_handles{,_total} and nodejs_active_resources{,_total}: prom-client lists the
 *   handles with process._getActiveHandles() (one JavaScript object per handle, each asked for
 *   its constructor's name) and the resources with process.getActiveResourcesInfo(), each once
 *   per gauge: four lists per scrape, ~10 ms of the event loop with 10,000 sockets (measured in
 *   the benchmark's profile). Here one getActiveResourcesInfo() list per scrape serves all four
 *   (see tallyActiveResources). The handles' `type` label is therefore the C++ class name, as the
 *   metric's help text has always said (TCPSocketWrap, TCPServerWrap, TTYWrap), where
 *   prom-client's own collector gives the JavaScript class (Socket, Server, WriteStream).
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
  _getActiveRequests?: () => unknown[];
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

/** Where Linux keeps the range of local ports it picks from for connect() without bind(). */
export const LOCAL_PORT_RANGE_PATH = '/proc/sys/net/ipv4/ip_local_port_range';

/**
 * How many ports net.ipv4.ip_local_port_range holds in this process's network namespace (the
 * sysctl is per namespace): "32768\t60999" is 28,232. Null when it cannot be read (not Linux).
 * A read of a 12-byte procfs file, cheap enough for every scrape, so a sysctl -w shows at once.
 */
export function ephemeralPortCount(read: (path: string) => string = (p) => fs.readFileSync(p, 'utf8')): number | null {
  let text: string;
  try {
    text = read(LOCAL_PORT_RANGE_PATH);
  } catch {
    return null;
  }
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  if (m === null) return null;
  const low = Number(m[1]);
  const high = Number(m[2]);
  return high >= low ? high - low + 1 : null;
}

/** Counts by type of the active resources, and of the handles among them. */
export interface ActiveTally {
  resources: Map<string, number>;
  resourcesTotal: number;
  handles: Map<string, number>;
  handlesTotal: number;
}

/**
 * One list of the active resources serves all four gauges. Node.js lists them as the pending
 * requests first, then the referenced handles, then one 'Timeout' per active timer and one
 * 'Immediate' per queued setImmediate() (getActiveResourcesInfo in lib/internal/bootstrap/node.js),
 * each named by its C++ class (TCPSocketWrap, TCPServerWrap, TTYWrap, ...). The handles are the
 * middle run: after as many entries as process._getActiveRequests() returns (a short list: only
 * requests in flight), before the trailing timers. The test suite checks the count against
 * process._getActiveHandles() so that a Node.js that lists them otherwise is noticed.
 */
export function tallyActiveResources(
  info: readonly string[],
  requestCount: number,
): ActiveTally {
  const resources = new Map<string, number>();
  for (let i = 0; i < info.length; i++) {
    const type = info[i] as string;
    resources.set(type, (resources.get(type) ?? 0) + 1);
  }
  let end = info.length;
  while (end > requestCount && (info[end - 1] === 'Timeout' || info[end - 1] === 'Immediate')) end--;
  const start = Math.min(requestCount, end);
  const handles = new Map<string, number>();
  for (let i = start; i < end; i++) {
    const type = info[i] as string;
    handles.set(type, (handles.get(type) ?? 0) + 1);
  }
  return { resources, resourcesTotal: info.length, handles, handlesTotal: end - start };
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
  const listResources = proc.getActiveResourcesInfo;
  if (listResources === undefined) return; // not in this Node.js, as prom-client would skip them
  // Taken at most once per scrape: prom-client calls every collect() in one synchronous pass over
  // the registry, so the tally is dropped in a microtask after it.
  let tally: ActiveTally | null = null;
  const forget = (): void => {
    tally = null;
  };
  const current = (): ActiveTally => {
    if (tally === null) {
      tally = tallyActiveResources(listResources.call(process), proc._getActiveRequests?.().length ?? 0);
      queueMicrotask(forget);
    }
    return tally;
  };
  const gauges = [
    {
      name: 'nodejs_active_handles',
      help: 'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.',
      totalHelp: 'Total number of active handles.',
      byType: (t: ActiveTally) => t.handles,
      total: (t: ActiveTally) => t.handlesTotal,
    },
    {
      name: 'nodejs_active_resources',
      help: 'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
      totalHelp: 'Total number of active resources.',
      byType: (t: ActiveTally) => t.resources,
      total: (t: ActiveTally) => t.resourcesTotal,
    },
  ];
  for (const { name, help, totalHelp, byType, total } of gauges) {
    new client.Gauge({
      name,
      help,
      labelNames: ['type'] as const,
      registers: registries,
      collect() {
        this.reset();
        for (const [type, n] of byType(current())) this.set({ type }, n);
      },
    });
    new client.Gauge({
      name: `${name}_total`,
      help: totalHelp,
      registers: registries,
      collect() {
        this.set(total(current()));
      },
    });
  }
}
