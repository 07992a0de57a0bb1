/**
 * A running synfin: TUN device → stack → proxy, with metrics, the HTTP API and logs attached.
 * `startSynfin(config)` builds it and returns a handle; main.ts (the CLI) and demo.ts use it, and
 * so can tests that want the whole thing in-process.
 */
import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { ConfigError, SynfinError } from './errors.js';
import { build } from './http/app.js';
import { livePage } from './http/page.js';
import { captureRoutes } from './http/capture.js';
import { accessLog, createLogger, attachTransitionLogging, ThrottledWarning } from './observability/log.js';
import { createSummary, type Summary } from './observability/summary.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { ephemeralPortCount } from './observability/process-metrics.js';
import { ConnectionRegistry } from './observability/registry.js';
import { ServiceMetrics } from './observability/service-metrics.js';
import { Services } from './observability/services.js';
import { buildCatalogue, readServiceFile, ServiceFileWatcher } from './service-file.js';
import { FlightRecorder } from './observability/history.js';
import { UpstreamForwarder } from './proxy/forwarder.js';
import { DestinationPolicy } from './proxy/policy.js';
import { monotonicClock, type Clock } from './stack/clock.js';
import { EventHub } from './stack/events.js';
import { CaptureControl } from './stack/capture.js';
import { ImpairedRx, ImpairedTx, parseFaultSpec, type FaultCounters } from './stack/fault.js';
import type { LinkRx } from './wire/link.js';
import { Stack } from './stack/stack.js';
import { installStopSignals } from './stop-signals.js';
import { defaultMemoryLimit, MemoryBudget } from './tcp/memory-budget.js';
import { ccByName } from './tcp/cc/index.js';
import { defaultTcpConfig } from './tcp/defaults.js';
import type { RxBatch, Tun } from './tun/index.js';
import { capabilityNames, ownCapabilities } from './tun/caps.js';
import { openConfiguredDevice } from './tun/configure.js';
import { IPV4_HEADER_LEN, TCP_HEADER_LEN } from './wire/field.js';

export const VERSION = '0.1.0';

/**
 * Under memory pressure, a full collection once connections have given back 1/16 of the limit
 * since the last one (checked 4 times a second): the buffers they gave back are garbage until V8
 * collects them, and V8 waits for up to 64 MB of new external memory before it does (measured:
 * 19-21 MiB of such garbage on top of a 64 MiB budget under a flood, none with a collection every
 * 500 ms; BENCHMARKS.md "Memory bounded by design"). Only while the budget is past 5/8.
 */
function pressureCollector(budget: MemoryBudget): NodeJS.Timeout {
  let releasedAtLast = 0;
  const timer = setInterval(() => {
    if (!budget.pressure || budget.releasedTotal - releasedAtLast < budget.limit / 16) return;
    releasedAtLast = budget.releasedTotal;
    fullCollection();
  }, 250);
  timer.unref();
  return timer;
}

let gcFunction: (() => void) | null = null;
/**
 * One full collection now (V8's gc(), exposed on first use). `compact`: every old-space page is
 * evacuated, not only the emptiest (V8's --compact-on-every-full-gc, for this collection only):
 * after a wave of closes the survivors are spread thinly over the pages the closed connections
 * filled, and without compaction those pages stay committed (measured: heap total 53-56 MiB
 * after the collection against 20-33 MiB before the connections opened).
 */
function fullCollection(compact = false): void {
  if (gcFunction === null) {
    v8.setFlagsFromString('--expose-gc');
    gcFunction = vm.runInNewContext('gc') as () => void;
  }
  if (!compact) {
    gcFunction();
    return;
  }
  v8.setFlagsFromString('--compact-on-every-full-gc');
  try {
    gcFunction();
  } finally {
    v8.setFlagsFromString('--no-compact-on-every-full-gc');
  }
}

/**
 * After a wave of closes, one full collection: the closed connections' objects sit in V8's old
 * space as garbage, and with nothing allocating V8 may not collect them for minutes (its memory
 * reducer is armed only by some collections: measured, RSS stayed 53-65 MiB above the baseline
 * 30 s after 10,000 idle connections closed in some runs and came back in others; issue 24 asks
 * for RSS back within 16 MiB in 30 s). `sample` is given the live count (connections and
 * TIME-WAIT records) once a second and says when to collect: the count has fallen by at least
 * `minDrop` and to half or less of its highest since the last collection. Steady churn never
 * triggers it; the pause (a full, compacting collection of what is left) is paid once per wave.
 */
export class CloseWaveCollector {
  private high = 0;

  constructor(private readonly minDrop = 1024) {}

  sample(live: number): boolean {
    if (live > this.high) {
      this.high = live;
      return false;
    }
    if (this.high - live < this.minDrop || live > this.high / 2) return false;
    this.high = live;
    return true;
  }
}

function closeWaveCollector(stack: Stack): NodeJS.Timeout {
  const wave = new CloseWaveCollector();
  const timer = setInterval(() => {
    if (wave.sample(stack.connectionCount + stack.timeWaitRecords)) fullCollection(true);
  }, 1000);
  timer.unref();
  return timer;
}

/** A small file's text (cgroup limits), or null when it cannot be read. */
function readSmallFile(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

export interface Synfin {
  config: Config;
  tun: Tun;
  stack: Stack;
  proxy: UpstreamForwarder;
  /** The --memory-limit budget every connection's buffers are charged to. */
  budget: MemoryBudget;
  /** The packet capture ring's switch (--capture-buffer, POST /api/capture). */
  capture: CaptureControl;
  metrics: Metrics;
  /**
   * The flight recorder (/api/history, --access-log). Its hooks `serviceOf` (the service
   * catalogue's classifier) and `appProcessOf` (the app process resolver) are null until wired.
   */
  history: FlightRecorder;
  app: FastifyInstance;
  logger: Logger;
  /**
   * With --impair, the fault injector's live counters per direction (`rx`: device → stack, `tx`:
   * stack → device), so tests can reconcile what was injected with what the stack saw; else null.
   */
  impairment: { rx: FaultCounters; tx: FaultCounters } | null;
  /** The connection table: both legs of every connection, and the app process holding each (appProcessOf). */
  connections: ConnectionRegistry;
  /** The live page's summary (GET /api/summary); a --workers worker answers with its parts. */
  summary: Summary;
  /** The event hub every observer subscribes to (a --workers worker forwards /api/events from it). */
  events: EventHub;
  /** The address the HTTP server listens on (port resolved when 0 was asked for). */
  listenUrl: string;
  /** The named services in force (--service, --service-file); `services.serviceOf(destination)` names a destination. */
  services: Services;
  /** Re-read --service-file now, as SIGHUP does; whether the services changed (false without a file). */
  reloadServices(): boolean;
  /** Stop accepting, give open connections up to the grace period, then close everything. */
  shutdown(reason?: string): Promise<void>;
  /** End a shutdown's grace period now (a second SIGTERM): the connections still open are reset. */
  endGrace(reason?: string): void;
}

/** Largest TCP payload we put in one TSO super-segment: within IPv4's 65535-octet datagram. */
const GSO_MAX_PAYLOAD = 65535 - 60 - 60;

export interface StartOptions {
  logger?: Logger;
  /**
   * A device already open and configured (e.g. one queue of a multi-queue device, opened by
   * whoever runs several stacks: bench/synfin-workers-in-ns.mjs): used as it is, and `netns`,
   * `dropCapabilities` and the device fields of the config are not applied. synfin closes it at
   * shutdown.
   */
  tun?: Tun;
  installSignalHandlers?: boolean;
  /**
   * Move the TUN device into this network namespace right after opening it, and configure it
   * there (address, MTU, routes). synfin itself stays in its own namespace: its upstream sockets
   * use the host's network while the namespace's traffic arrives on the device.
   */
  netns?: string;
  /**
   * The app's own network namespace (`/var/run/netns/NAME`) when synfin stands in front of it
   * rather than inside it: the app's sockets (appState, appProcess) are read from that
   * namespace's table. The demo sets it to the namespace its client runs in.
   */
  appNetns?: string;
  /**
   * Least privilege (`synfin run`): once the device is ready, a process that holds any capability
   * drops them all but what its options need and re-executes itself (src/tun/caps.ts); the new
   * process adopts the device. Off for the demo, which keeps what it needs to remove what it made.
   */
  dropCapabilities?: boolean;
  /**
   * Listen on config.listen (default true). A worker thread's stack (src/workers/) has no server
   * of its own: its app is built (for inject) but the main thread answers HTTP; `listenGuard`
   * then names the main thread's listener, which is never a destination.
   */
  serveHttp?: boolean;
  listenGuard?: { host: string; port: number };
  /** The stack's 16-byte secret (ISNs, timestamp offsets, SYN cookies, flow keys); default random. With workers, one for all. */
  secret?: Uint8Array;
  /** The clock (default monotonicClock); a worker's reads the main thread's time line. */
  clock?: Clock;
}

/** The HTTP server on --listen; the address it listens on. Bad addresses end in a ConfigError. */
async function listenHttp(app: FastifyInstance, config: Config, tun: Tun, stack: Stack, proxy: UpstreamForwarder): Promise<string> {
  try {
    await app.listen({ host: config.listenHost, port: config.listenPort });
  } catch (err) {
    tun.close();
    stack.stop();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ConfigError(`--listen: ${config.listenHost}:${config.listenPort} is already in use`);
    if (code === 'EADDRNOTAVAIL') throw new ConfigError(`--listen: ${config.listenHost} is not an address of this host`);
    if (code === 'EACCES') throw new ConfigError(`--listen: no permission to listen on port ${config.listenPort}`);
    // A kernel booted with ipv6.disable=1 has no IPv6 sockets at all, not even the [::] wildcard.
    if (code === 'EAFNOSUPPORT') throw new ConfigError(`--listen: ${config.listenHost} needs IPv6, which this host does not have (use 0.0.0.0:${config.listenPort})`);
    throw err;
  }
  const addr = app.server.address();
  const listenUrl =
    addr !== null && typeof addr === 'object'
      ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
      : `http://${config.listenHost}:${config.listenPort}`;
  // synfin's own listener is never a destination through the tunnel (policy.ts ListenGuard).
  if (addr !== null && typeof addr === 'object') proxy.listenGuard.set(addr.address, addr.port);
  else proxy.listenGuard.set(config.listenHost, config.listenPort);
  return listenUrl;
}

export async function startSynfin(config: Config, opts: StartOptions = {}): Promise<Synfin> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  const clock = opts.clock ?? monotonicClock;
  const hub = new EventHub();
  // --service, --service-file: read before the device is touched, so a bad file fails first.
  const serviceFile = config.serviceFile !== null ? readServiceFile(config.serviceFile) : null;
  const services = new Services(buildCatalogue(config.services, serviceFile?.rules ?? []));

  const { tun, changes: deviceChanges } =
    opts.tun !== undefined
      ? { tun: opts.tun, changes: [] }
      : openConfiguredDevice(config, {
          netns: opts.netns,
          dropCapabilities: opts.dropCapabilities === true,
          listenPort: config.listenPort,
          keepCapabilities: config.keepCapabilities,
        });
  const mtu = tun.mtu;
  const tcp = defaultTcpConfig({
    mslMs: config.mslSeconds * 1000,
    // RFC 9293 §3.7.1: MSS = MTU − IP header − TCP header (IPv6 connections use 20 octets less, set per connection).
    mss: Math.max(536, mtu - IPV4_HEADER_LEN - TCP_HEADER_LEN),
    congestionControl: ccByName(config.congestionControl),
    hystart: config.hystart,
    gsoMaxBytes: tun.vnetHdr ? GSO_MAX_PAYLOAD : 0,
  });

  // --memory-limit: one budget for every connection's buffers (src/stack/memory-budget.ts).
  const memoryLimit = config.memoryLimit !== null ? { bytes: config.memoryLimit, source: 'option' } : defaultMemoryLimit(readSmallFile);
  const budget = new MemoryBudget(memoryLimit.bytes);
  const collector = pressureCollector(budget);

  const policy = new DestinationPolicy({ allow: config.allow, deny: config.deny, map: config.map });
  const connections = new ConnectionRegistry(clock, { appNetns: opts.appNetns });
  const proxy = new UpstreamForwarder({
    clock,
    policy,
    connectTimeoutMs: config.connectTimeoutSeconds * 1000,
    idleTimeoutMs: config.idleTimeoutSeconds * 1000,
    upstreamBind: config.upstreamBind ?? undefined,
    maxDialsInFlight: Math.max(64, config.synBacklog),
    events: hub,
    budget,
  });
  // --impair: the seeded fault injector in front of the device, both directions (a testing aid:
  // this kernel has no netem).
  const fault = config.impair !== null ? parseFaultSpec(config.impair) : null;
  const timers = { now: () => clock.now(), setTimer: (cb: () => void, ms: number) => setTimeout(cb, ms), clearTimer: (h: unknown) => clearTimeout(h as NodeJS.Timeout) };
  const impairedTx = fault !== null ? new ImpairedTx(tun, fault, timers) : null;
  // Linux logs "TCP: time wait bucket table overflow" rate-limited; so do we, once a minute at most.
  const timeWaitWarning = new ThrottledWarning(
    logger,
    60_000,
    'skipped',
    `TIME-WAIT bound reached (--max-time-wait ${config.maxTimeWait}): closing connections skip TIME-WAIT (synfin_tcp_time_wait_overflow_total)`,
  );
  const stack = new Stack({
    link: impairedTx ?? tun,
    clock,
    tcp,
    forwarder: proxy,
    events: hub,
    synBacklog: config.synBacklog,
    maxConnections: config.maxConnections,
    maxTimeWait: config.maxTimeWait,
    onTimeWaitOverflow: (now) => timeWaitWarning.note(now),
    budget,
    secret: opts.secret,
  });
  proxy.attach(stack);
  connections.attach(stack);
  const waveCollector = closeWaveCollector(stack);
  // --capture-buffer: the app leg's packets in a ring (off: none allocated; POST /api/capture).
  const capture = new CaptureControl(stack, { bufferBytes: config.captureBuffer, snaplen: config.captureSnaplen });

  let ready = false;
  let shuttingDown = false;
  const metrics = createMetrics(
    hub,
    {
      clock,
      forEachConnection: (visit) => connections.forEachSample(visit),
      counters: () => ({
        segmentsIn: stack.segmentsIn,
        segmentsOut: stack.segmentsOut,
        bytesClientToUpstream: hub.bytes.bytesClientToUpstream,
        bytesUpstreamToClient: hub.bytes.bytesUpstreamToClient,
        tunRxPackets: tun.counters.rxPackets,
        tunRxBytes: tun.counters.rxBytes,
        tunTxPackets: tun.counters.txPackets,
        tunTxBytes: tun.counters.txBytes,
      }),
      synCookies: () => ({ sent: stack.synCookiesSent, accepted: stack.synCookiesAccepted }),
      timeWaitOverflows: () => stack.timeWaitOverflows,
      upstreamSockets: () => connections.upstreamSocketStates(),
      ready: () => ready && !shuttingDown,
      memory: () => ({ used: budget.used, limit: budget.limit }),
      ephemeralPorts: () => ephemeralPortCount(),
    },
    VERSION,
  );
  const serviceMetrics = new ServiceMetrics(
    services,
    { clock, forEachConnection: (visit) => connections.forEachSample(visit) },
    { text: [metrics.registry], other: [metrics.openMetricsRegistry as unknown as typeof metrics.registry] },
  );
  connections.useServices(services, serviceMetrics);
  // Each pipe also counts its bytes under its connection's service.
  hub.serviceBytes = (service) => serviceMetrics.bytesOf(service);
  const serviceWatcher =
    config.serviceFile !== null ? new ServiceFileWatcher({ file: config.serviceFile, specs: config.services, services, logger }, serviceFile?.text ?? null) : null;
  serviceWatcher?.start();
  const onSighup = (): void => {
    serviceWatcher?.reload('SIGHUP');
  };
  // SIGHUP re-reads --service-file (as daemons reload their configuration); without one, SIGHUP keeps its default.
  if (opts.installSignalHandlers === true && serviceWatcher !== null) process.on('SIGHUP', onSighup);
  const summary = createSummary(hub, connections, clock, {
    // The page takes the last kernel snapshot as it is and has it refreshed for its next update:
    // never a read of /proc/net/tcp on the event loop per page view.
    upstreamTimeWait: () => {
      connections.kernel.refreshIfOlder(1000);
      return connections.upstreamSocketStates().TIME_WAIT ?? 0;
    },
  });
  const detachLogging = attachTransitionLogging(hub, logger, (conn) => connections.describe(conn));
  // The flight recorder listens only when something reads it: the ring (--history N) or the access log.
  const history = new FlightRecorder({ capacity: config.history });
  // The registry's `closed` handler runs first (it subscribed first) and keeps the process it
  // named until its next resolution, so the record of a closing connection still finds it.
  history.appProcessOf = (id) => connections.appProcessOf(id)?.appProcess ?? null;
  // The services in force name the destination of each closing connection (--service).
  history.serviceOf = (family, address, port) => services.classifyName(family, address, port);
  if (config.accessLog) {
    // The log is the operator's own output (like the API on loopback); --api-addresses none hides addresses there too.
    history.onRecord = accessLog(logger, config.apiAddresses === 'none');
  }
  if (config.history > 0 || config.accessLog) history.attach(hub);

  const app = build({
    registry: metrics.registry,
    openMetricsRegistry: metrics.openMetricsRegistry,
    connections,
    events: hub,
    isReady: () => ready && !shuttingDown,
    describe: (conn) => connections.describe(conn),
    serviceOf: (conn) => connections.serviceOf(conn),
    apiAddresses: config.apiAddresses,
    maxEventStreams: config.maxEventStreams,
    apiHosts: config.apiHosts,
    history: config.history > 0 ? history.ring : null,
    beforeScrape: () => connections.prepareScrape(),
    plugins: [livePage(summary), captureRoutes({ control: capture, apiAddresses: config.apiAddresses, serviceOfConn: (id) => connections.serviceOfId(id) })],
    log: logger.child({ component: 'http' }),
  });

  const impairedRx = fault !== null ? new ImpairedRx(stack, { ...fault, seed: fault.seed + 1 }, timers) : null;
  const rx: LinkRx = impairedRx ?? stack;
  const onBatch = (batch: RxBatch): void => {
    const buf = batch.buffer;
    for (let i = 0; i < batch.count; i++) {
      rx.input(buf, batch.offset[i]!, batch.length[i]!, batch.checksumKnownGood(i));
    }
    rx.flush();
  };
  let deviceLost = false;
  tun.on('error', (err: Error) => {
    // The device went away under us (deleted, or moved): not ready, and say so once.
    ready = false;
    if (deviceLost) return;
    deviceLost = true;
    const open = proxy.pipes.size;
    logger.error(
      { err: { message: err.message, code: (err as SynfinError).code }, resetConnections: open },
      `TUN device ${tun.name} failed; no longer ready: ${open} connections reset, no new ones (restart synfin to recreate the device)`,
    );
    // Every connection's app leg went with the device: reset the upstream legs now rather than
    // leave their sockets open until an idle timeout (which may be off), refuse pending dials,
    // and release the dead device. The process stays up: /metrics and /healthz keep answering,
    // /readyz says 503.
    proxy.stopAccepting();
    proxy.abortDials();
    for (const pipe of [...proxy.pipes]) pipe.abort('shutdown');
    stack.abortAll('shutdown');
    stack.stop();
    impairedRx?.stop();
    impairedTx?.stop();
    tun.close();
  });
  tun.start(onBatch);

  let listenUrl = '';
  if (opts.serveHttp === false) {
    if (opts.listenGuard !== undefined) proxy.listenGuard.set(opts.listenGuard.host, opts.listenGuard.port);
  } else {
    listenUrl = await listenHttp(app, config, tun, stack, proxy);
  }
  ready = true;
  const caps = ownCapabilities();
  logger.info(
    {
      tun: tun.name,
      mtu,
      listen: listenUrl,
      version: VERSION,
      memoryLimit: memoryLimit.bytes,
      memoryLimitFrom: memoryLimit.source,
      deviceChanges,
      capabilities: capabilityNames(caps.effective | caps.permitted | caps.ambient),
    },
    'synfin ready',
  );

  let shutdownPromise: Promise<void> | null = null;
  let graceEnded = false;
  const endGrace = (reason = 'shutdown'): void => {
    if (graceEnded) return;
    graceEnded = true;
    // Before a shutdown began, ending its grace period is starting one with none.
    if (shutdownPromise === null) void shutdown(reason);
  };
  const shutdown = (reason = 'shutdown'): Promise<void> => {
    if (shutdownPromise !== null) return shutdownPromise;
    shuttingDown = true;
    logger.info({ reason, open: stack.connectionCount }, 'shutting down: no new connections, waiting for open ones');
    shutdownPromise = (async () => {
      proxy.stopAccepting();
      proxy.abortDials();
      const graceEnd = Date.now() + config.shutdownGraceSeconds * 1000;
      while (proxy.pipes.size > 0 && Date.now() < graceEnd && !graceEnded) await new Promise((r) => setTimeout(r, 100));
      if (proxy.pipes.size > 0) {
        logger.info({ open: proxy.pipes.size, cutShort: graceEnded }, 'grace period over: resetting the remaining connections');
        for (const pipe of proxy.pipes) pipe.abort('shutdown');
        stack.abortAll('shutdown');
      }
      clearInterval(collector);
      clearInterval(waveCollector);
      serviceWatcher?.close();
      process.off('SIGHUP', onSighup);
      detachLogging();
      history.detach();
      summary.close();
      metrics.close();
      connections.close();
      await app.close();
      tun.stop();
      proxy.close();
      impairedRx?.stop();
      impairedTx?.stop();
      stack.stop();
      tun.close();
      logger.info('synfin stopped');
    })();
    return shutdownPromise;
  };

  if (opts.installSignalHandlers === true) installStopSignals({ shutdown, endGrace }, logger);

  const impairment = impairedRx !== null && impairedTx !== null ? { rx: impairedRx.counters, tx: impairedTx.counters } : null;
  const reloadServices = (): boolean => serviceWatcher?.reload('SIGHUP') ?? false;
  return { config, tun, stack, proxy, budget, capture, metrics, history, app, logger, impairment, connections, summary, events: hub, listenUrl, services, reloadServices, shutdown, endGrace };
}
