/**
 * Joins the two legs of every connection for the API and the gauges: the stack's side (TcpConn
 * or TIME-WAIT record, by connection id) and the proxy's side (the pipe and its kernel socket).
 * It also remembers the 4-tuples of synfin's upstream sockets after they close, so their kernel
 * TIME_WAIT can be counted (synfin_upstream_sockets) by matching /proc/net/tcp{,6}.
 */
import type { Clock } from '../stack/clock.js';
import { COL_CREATED_AT, COL_LAST_ACTIVITY_AT, COL_SERVICE, COL_STATE_SINCE, KIND_CONN, KIND_SYN, ROW_PENDING_SYN, ROW_WIDTH, type TimeWaitEntry, type Stack } from '../stack/stack.js';
import type { ByteCounters, UpstreamLeg, UpstreamResult } from '../stack/upstream-leg.js';
import type { TcpConn } from '../tcp/conn.js';
import type { CloseReason, ConnFlow, ConnIdentity, ResetDirection } from '../tcp/events.js';
import { State, STATE_NAMES } from '../tcp/state.js';
import {
  KERNEL_TCP_STATE_NAMES,
  TCP_INFO_FIELDS,
  TCP_INFO_RTT_US,
  TCP_INFO_STATE,
  TCP_INFO_TOTAL_RETRANS,
  tcpInfo,
} from './tcp-info.js';
import { formatEndpoint } from '../wire/packet.js';
import { MIN_WALK_INTERVAL_MS, SocketOwners, type AppProcessInfo } from './app-process.js';
import { IdIndex } from './id-index.js';
import { KernelSockets, type KernelState } from './kernel-sockets.js';
import type { ConnectionSample, UpstreamResultLabel } from './metrics.js';
import { remapIndices, Services, type ServiceCatalogue } from './services.js';
import { IdMap } from './id-map.js';
import {
  compileFilter,
  inferAppState,
  matchesCompiled,
  waitingOnFor,
  type ConnectionPage,
  type ConnectionRow,
  type ConnectionSource,
  type PageQuery,
} from './table.js';

/** How long before an expected scrape its kernel snapshot is taken. */
const AHEAD_LEAD_MS = 500;
/** How late a scrape may come and still use the snapshot taken for it. */
const AHEAD_SLACK_MS = 1000;
/** Scrape intervals that are anticipated (sooner ones share reads anyway; longer ones are not a rhythm). */
const MIN_ANTICIPATED_INTERVAL_MS = 2000;
const MAX_ANTICIPATED_INTERVAL_MS = 10 * 60_000;

/** What the per-service metrics (service-metrics.ts) are told of a connection, by its service index. */
export interface ServiceEventSink {
  closed(service: number, reason: CloseReason): void;
  reset(service: number, direction: ResetDirection): void;
  connect(service: number, result: UpstreamResultLabel, durationMs: number): void;
  bytesOf(service: number): ByteCounters;
}

export class ConnectionRegistry implements ConnectionSource {
  private stack: Stack | null = null;
  private readonly legsById = new IdMap<UpstreamLeg>();
  /** Every connection of the stack (pending SYNs included) by id, in id order: pages walk it. */
  private readonly flows = new IdIndex<ConnFlow>();
  private readonly info = new Float64Array(TCP_INFO_FIELDS);
  private lastScrapeAt = -Infinity;
  private aheadTimer: NodeJS.Timeout | null = null;
  /** A snapshot was taken in the background for the scrape now due, when kernel.changes was aheadChanges. */
  private aheadSnapshot = false;
  private aheadChanges = 0;
  /** The named services (--service): each connection's flow gets its index when its SYN arrives. */
  private services = new Services();
  private serviceSink: ServiceEventSink | null = null;

  /**
   * The kernel's sockets of this namespace, read off the event loop: callers that need them fresh
   * (/metrics, /api/connections) await `refreshKernel()` first; the live page takes them as they are.
   */
  readonly kernel: KernelSockets;
  /**
   * Where the app's sockets are: the same table (the sidecar: one namespace), or the table of the
   * app's own namespace when synfin stands in front of it (`appNetns`, as `synfin demo` does).
   */
  readonly appSockets: KernelSockets;
  /** Which process holds each app socket (app-process.ts), cached by inode. */
  readonly owners: SocketOwners;
  /**
   * The app process last named for a connection (rows returned by the API, connections waiting
   * on the app), for the flight recorder at its close: appProcessOf(). Entries of closed
   * connections go at the next resolution after their close.
   */
  private readonly appById = new Map<number, AppProcessInfo>();
  private closedAppIds: number[] = [];
  private appTimer: NodeJS.Timeout | null = null;
  private appTick: Promise<void> | null = null;
  private readonly appIntervalMs: number;

  constructor(
    private readonly clock: Clock,
    opts: { procRoot?: string; ownerWalkIntervalMs?: number; appNetns?: string } = {},
  ) {
    this.kernel = new KernelSockets(() => clock.now());
    this.appSockets = opts.appNetns === undefined ? this.kernel : new KernelSockets(() => clock.now(), { netns: opts.appNetns });
    this.appIntervalMs = opts.ownerWalkIntervalMs ?? MIN_WALK_INTERVAL_MS;
    this.owners = new SocketOwners(() => clock.now(), { procRoot: opts.procRoot, minWalkIntervalMs: this.appIntervalMs });
  }

  /** A kernel socket snapshot no older than `maxAgeMs`, before rows() or upstreamSocketStates(). */
  async refreshKernel(maxAgeMs = 0): Promise<void> {
    if (this.appSockets === this.kernel) await this.kernel.fresh(maxAgeMs);
    else await Promise.all([this.kernel.fresh(maxAgeMs), this.appSockets.fresh(maxAgeMs)]);
  }

  /**
   * Before a /metrics scrape: a kernel snapshot for upstreamSocketStates(). Scrapers come at a
   * steady interval, so after each scrape the next snapshot is taken in the background shortly
   * before the next one is due, and the scrape does not wait for the kernel (~15 ms with 20,000
   * sockets in the namespace, measured here) if synfin opened or closed no upstream socket since
   * that snapshot began: a value is never older than synfin's own last change. A scrape that
   * comes off that rhythm (the first, or one sooner than 2 s after the last), or after such a
   * change, waits for a read, shared with any other within 100 ms. One read per scrape either
   * way; none while synfin has no upstream socket to find.
   */
  async prepareScrape(): Promise<void> {
    const now = this.clock.now();
    const interval = now - this.lastScrapeAt;
    this.lastScrapeAt = now;
    const ahead = this.aheadSnapshot && this.aheadChanges === this.kernel.changes;
    this.aheadSnapshot = false;
    if (this.kernel.watched === 0) return;
    if (!(ahead && this.kernel.age() <= AHEAD_LEAD_MS + AHEAD_SLACK_MS)) await this.kernel.fresh(100);
    this.scheduleAhead(interval);
  }

  private scheduleAhead(interval: number): void {
    if (this.aheadTimer !== null) clearTimeout(this.aheadTimer);
    this.aheadTimer = null;
    if (!(interval >= MIN_ANTICIPATED_INTERVAL_MS && interval <= MAX_ANTICIPATED_INTERVAL_MS)) return;
    this.aheadTimer = setTimeout(() => {
      this.aheadTimer = null;
      if (this.kernel.watched === 0) return;
      const changes = this.kernel.changes;
      void this.kernel.refresh().then(() => {
        this.aheadSnapshot = this.kernel.lastError === null;
        this.aheadChanges = changes;
      });
    }, interval - AHEAD_LEAD_MS);
    this.aheadTimer.unref();
  }

  /** Stop the background read scheduled for the next scrape, and the app process watch. */
  close(): void {
    if (this.aheadTimer !== null) clearTimeout(this.aheadTimer);
    this.aheadTimer = null;
    if (this.appTimer !== null) clearInterval(this.appTimer);
    this.appTimer = null;
  }

  /**
   * Name destinations with these services (and count per service into `sink`). A connection is
   * classified once, when its SYN arrives; when the services change, live connections keep the
   * name they were classified under (`other` if it went away).
   */
  useServices(services: Services, sink: ServiceEventSink | null): void {
    this.services = services;
    this.serviceSink = sink;
    services.onChange((next, previous) => this.remapServices(next, previous));
  }

  /** The services in force. */
  get serviceCatalogue(): ServiceCatalogue {
    return this.services.current;
  }

  private remapServices(next: ServiceCatalogue, previous: ServiceCatalogue): void {
    const map = remapIndices(previous, next);
    const index = this.flows;
    for (let i = 0; i < index.length; i++) {
      const flow = index.at(i);
      if (flow !== null) flow.service = map[flow.service] ?? 0;
    }
    this.stack?.rewriteRows();
  }

  private serviceName(flow: ConnFlow): string {
    return this.services.current.nameOf(flow.service);
  }

  /** A live connection's service name by id (the capture's ?service=), null when it is not in the table. */
  serviceOfId(connId: number): string | null {
    const flow = this.flows.get(connId);
    return flow === undefined ? null : this.serviceName(flow);
  }

  /** Follow the stack's table (by its events) and the proxy's upstream legs (published on the same hub). */
  attach(stack: Stack): void {
    this.stack = stack;
    stack.events.subscribe({
      opened: (conn: ConnIdentity) => {
        const flow = conn.flow;
        if (flow === null) return;
        // Once per connection, before the forwarder dials: the pipe counts bytes under it.
        flow.service = this.services.current.classify(flow.family, flow.local, flow.localPort);
        this.flows.add(conn.id, flow);
      },
      reset: (conn: ConnIdentity | null, direction: ResetDirection) => {
        const flow = conn?.flow;
        if (flow !== null && flow !== undefined) this.serviceSink?.reset(flow.service, direction);
      },
      upstreamConnect: (connId: number, result: UpstreamResult, durationMs: number) => {
        this.serviceSink?.connect(this.flows.get(connId)?.service ?? 0, result, durationMs);
      },
      closed: (conn: ConnIdentity, reason: CloseReason) => {
        this.serviceSink?.closed(conn.flow?.service ?? 0, reason);
        this.flows.delete(conn.id);
        // Kept until the next resolution: the flight recorder reads it in its own `closed` handler.
        if (this.appById.has(conn.id)) this.closedAppIds.push(conn.id);
      },
      // A pending SYN forgotten without an answer (the dial cap) leaves the table with no `closed` event.
      forgotten: (conn: ConnIdentity) => {
        this.flows.delete(conn.id);
      },
      upstreamOpened: (leg: UpstreamLeg) => this.legOpened(leg),
      upstreamClosed: (leg: UpstreamLeg) => this.legClosed(leg),
    });
    // Connections waiting on the app are the ones whose process someone will ask for (the page,
    // the Grafana table, the flight recorder when they finally close): resolved in the background
    // every few seconds while there are any.
    this.appTimer = setInterval(() => void this.watchWaitingOnApp(), this.appIntervalMs);
    this.appTimer.unref();
  }

  // ------------------------------------------------------------ app processes

  /**
   * The process that held a connection's app socket, as last resolved (see appById), for the
   * flight recorder: callable from a `closed` handler. Null when it was never named.
   */
  appProcessOf(connId: number): AppProcessInfo | null {
    return this.appById.get(connId) ?? null;
  }

  /** What is known now of the process holding the app socket of `flow` (never reads /proc). */
  private appProcessInfo(flow: ConnFlow): AppProcessInfo {
    const kernel = this.appSockets;
    if (kernel.size === 0) return this.owners.lookup(-1);
    return this.owners.lookup(kernel.inodeOf(flow.family, flow.remote, flow.remotePort, flow.local, flow.localPort));
  }

  /**
   * Resolve the app process of rows built by page() or rows() that are still `pending`, off the
   * event loop (app-process.ts), and fill it in. The kernel snapshot is the one they were built from.
   */
  async resolveAppProcesses(rows: ConnectionRow[]): Promise<void> {
    this.forgetClosed();
    const inodes: number[] = [];
    for (const r of rows) if (r.appProcessSource === 'pending') inodes.push(this.inodeOfId(r.id));
    if (inodes.length > 0) await this.owners.resolve(inodes);
    for (const r of rows) {
      const flow = this.flows.get(r.id);
      if (flow === undefined) continue; // closed meanwhile: the row keeps what it had
      if (r.appProcessSource === 'pending') {
        const info = this.appProcessInfo(flow);
        r.appProcess = info.appProcess;
        r.appProcessSource = info.appProcessSource;
      }
      this.remember(r.id, r);
    }
  }

  /** Keeps a connection's process for appProcessOf() (only a named one: null says nothing new). */
  private remember(id: number, info: AppProcessInfo): void {
    if (info.appProcess !== null) this.appById.set(id, { appProcess: info.appProcess, appProcessSource: info.appProcessSource });
  }

  private inodeOfId(id: number): number {
    const flow = this.flows.get(id);
    if (flow === undefined || this.appSockets.size === 0) return -1;
    return this.appSockets.inodeOf(flow.family, flow.remote, flow.remotePort, flow.local, flow.localPort);
  }

  /** One round of the background watch: the owners of the connections waiting on the app. */
  watchWaitingOnApp(): Promise<void> {
    this.appTick ??= this.resolveWaitingOnApp().finally(() => {
      this.appTick = null;
    });
    return this.appTick;
  }

  private async resolveWaitingOnApp(): Promise<void> {
    this.forgetClosed();
    const stack = this.stack;
    if (stack === null) return;
    const ids: number[] = [];
    const { code } = stack.columns;
    for (let slot = 0; slot < stack.tableSize; slot++) {
      const state = code[slot] as number;
      if (state === ROW_PENDING_SYN || waitingOnFor(state as State) !== 'app') continue;
      const conn = stack.connAt(slot);
      if (conn !== null) ids.push(conn.id);
    }
    if (ids.length === 0) return;
    await this.appSockets.fresh(this.appIntervalMs);
    await this.owners.resolve(ids.map((id) => this.inodeOfId(id)));
    for (const id of ids) {
      const flow = this.flows.get(id);
      if (flow !== undefined) this.remember(id, this.appProcessInfo(flow));
    }
  }

  private forgetClosed(): void {
    if (this.closedAppIds.length === 0) return;
    for (const id of this.closedAppIds) if (this.flows.get(id) === undefined) this.appById.delete(id);
    this.closedAppIds = [];
  }

  private legOpened(leg: UpstreamLeg): void {
    this.legsById.set(leg.id, leg);
    // The 4-tuple to watch in the kernel's table, as numbers: the local end as the connect call
    // read it (getsockname), the remote end as dialled.
    const t = leg.watchedTuple();
    if (t !== null) this.kernel.watchWords(leg.id, t.localFamily === 6 ? 6 : 4, t.localWords, t.localPort, t.remoteWords, t.remotePort);
  }
  private legClosed(leg: UpstreamLeg): void {
    const id = leg.id;
    if (this.legsById.get(id) === leg) this.legsById.delete(id);
    this.kernel.release(id);
  }

  describe(conn: ConnIdentity): { client: string; destination: string; service: string } | null {
    const f = conn.flow;
    if (f === null) return null;
    return { client: formatEndpoint(f.family, f.remote, f.remotePort), destination: formatEndpoint(f.family, f.local, f.localPort), service: this.serviceName(f) };
  }

  /** A connection's service name, null when it has no flow. */
  serviceOf(conn: ConnIdentity): string | null {
    return conn.flow === null ? null : this.serviceName(conn.flow);
  }

  // ------------------------------------------------------------ ConnectionSource
  forEachSample(visit: (s: ConnectionSample) => void): void {
    const stack = this.stack;
    if (stack === null) return;
    // 10,000 connections are walked per scrape: from the stack's columns (contiguous numbers per
    // table slot), touching a connection itself only when it waits on a side (for its pipe).
    const sample: ConnectionSample = { state: State.CLOSED, createdAt: 0, lastActivityAt: 0, waitingOn: null, waitingSince: 0, service: 0 };
    const legs = this.legsById;
    const { code, values } = stack.columns;
    const n = stack.tableSize;
    for (let slot = 0; slot < n; slot++) {
      const state = code[slot] as number;
      if (state === ROW_PENDING_SYN) continue;
      const at = slot * ROW_WIDTH;
      const waitingOn = waitingOnFor(state as State);
      sample.state = state as State;
      sample.createdAt = values[at + COL_CREATED_AT] as number;
      sample.lastActivityAt = values[at + COL_LAST_ACTIVITY_AT] as number;
      sample.waitingOn = waitingOn;
      sample.waitingSince = 0;
      sample.service = values[at + COL_SERVICE] as number;
      if (waitingOn !== null) {
        const conn = stack.connAt(slot);
        const leg = conn === null ? undefined : legs.get(conn.id);
        sample.waitingSince = leg?.waitingSince ?? (values[at + COL_STATE_SINCE] as number);
      }
      visit(sample);
    }
  }

  rows(): ConnectionRow[] {
    const stack = this.stack;
    if (stack === null) return [];
    const now = this.clock.now();
    const rows: ConnectionRow[] = [];
    for (const e of stack.connections()) rows.push(this.connRow(e.flow, e.conn, now));
    for (const e of stack.timeWaits()) rows.push(this.timeWaitRow(e as TimeWaitEntry, now));
    return rows;
  }

  /**
   * One page of rows in id order after `q.afterId` (pageOfRows() says what). Walks the id index
   * from the cursor (a binary search), looks each connection up in the stack's table (a hash
   * lookup), and decides the filter on its state and times and the flow's numbers; only the rows
   * that match and fit in the page are built (addresses formatted, TCP_INFO read, the kernel's
   * table consulted). After a full page, the walk goes on to the next matching connection only to
   * tell whether there is a next page: a selective filter may read every later connection's cheap
   * columns, never its socket, and `maxExamined` cuts that walk into slices the caller spreads
   * over turns of the event loop.
   */
  page(q: PageQuery): ConnectionPage {
    const stack = this.stack;
    if (stack === null) return { rows: [], more: false, resumeAfterId: null };
    const now = this.clock.now();
    const f = compileFilter(q.filter, this.services.current);
    const index = this.flows;
    const rows: ConnectionRow[] = [];
    const maxExamined = q.maxExamined ?? Infinity;
    let examined = 0;
    let lastId = q.afterId;
    for (let i = index.firstAfter(q.afterId); i < index.length; i++) {
      const flow = index.at(i);
      if (flow === null) continue;
      const e = stack.entryFor(flow);
      if (e === undefined || e.kind === KIND_SYN) continue; // gone, or not a connection of the table yet
      if (examined === maxExamined) return { rows, more: false, resumeAfterId: lastId };
      examined++;
      lastId = index.idAt(i);
      const matched =
        e.kind === KIND_CONN
          ? matchesCompiled(f, e.conn.state, e.conn.createdAt, e.conn.lastActivityAt, flow.family, flow.local, flow.localPort, now, flow.service)
          : matchesCompiled(f, State.TIME_WAIT, e.openedAt, e.rec.enteredAt, flow.family, flow.local, flow.localPort, now, flow.service);
      if (!matched) continue;
      if (rows.length === q.limit) return { rows, more: true, resumeAfterId: null };
      rows.push(e.kind === KIND_CONN ? this.connRow(flow, e.conn, now) : this.timeWaitRow(e, now));
    }
    return { rows, more: false, resumeAfterId: null };
  }

  private connRow(flow: ConnFlow, conn: TcpConn, now: number): ConnectionRow {
    const leg = this.legsById.get(conn.id);
    let upstreamState: string | null = null;
    let upstreamRttSeconds: number | null = null;
    let upstreamRetransmits: number | null = null;
    if (leg !== undefined) {
      const fd = leg.upstreamFd();
      if (fd >= 0 && tcpInfo(fd, this.info)) {
        upstreamState = KERNEL_TCP_STATE_NAMES[this.info[TCP_INFO_STATE]!] ?? null;
        upstreamRttSeconds = this.info[TCP_INFO_RTT_US]! / 1e6;
        upstreamRetransmits = this.info[TCP_INFO_TOTAL_RETRANS]!;
      } else upstreamState = leg.upstreamClosed ? 'CLOSED' : null;
    }
    const waitingOn = waitingOnFor(conn.state);
    const srtt = conn.srttMs;
    const appKernelState = this.appKernelState(flow);
    const app = this.appProcessInfo(flow);
    return {
      id: conn.id,
      client: formatEndpoint(flow.family, flow.remote, flow.remotePort),
      destination: formatEndpoint(flow.family, flow.local, flow.localPort),
      service: this.serviceName(flow),
      upstream: leg?.upstreamEndpoints() ?? null,
      state: STATE_NAMES[conn.state]!,
      appState: appKernelState ?? inferAppState(conn.state, conn.snd.finAcked),
      appStateSource: appKernelState !== undefined ? 'kernel' : 'inferred',
      appProcess: app.appProcess,
      appProcessSource: app.appProcessSource,
      upstreamState,
      upstreamRttSeconds,
      upstreamRetransmits,
      waitingOn,
      waitingSeconds: waitingOn === null ? null : (now - (leg?.waitingSince ?? conn.stateSince)) / 1000,
      ageSeconds: (now - conn.createdAt) / 1000,
      stateAgeSeconds: (now - conn.stateSince) / 1000,
      idleSeconds: (now - conn.lastActivityAt) / 1000,
      bytesIn: conn.bytesIn,
      bytesOut: conn.bytesOut,
      rttSeconds: srtt > 0 ? srtt / 1000 : null,
      retransmits: conn.retransmits,
      sendWindow: conn.sendWindow,
      receiveWindow: conn.receiveWindow,
    };
  }

  private timeWaitRow(e: TimeWaitEntry, now: number): ConnectionRow {
    const { flow, rec } = e;
    const appKernelState = this.appKernelState(flow);
    const app = this.appProcessInfo(flow);
    return {
      id: rec.id,
      client: formatEndpoint(flow.family, flow.remote, flow.remotePort),
      destination: formatEndpoint(flow.family, flow.local, flow.localPort),
      service: this.serviceName(flow),
      upstream: null,
      state: 'TIME_WAIT',
      appState: appKernelState ?? inferAppState(State.TIME_WAIT, true),
      appStateSource: appKernelState !== undefined ? 'kernel' : 'inferred',
      appProcess: app.appProcess,
      appProcessSource: app.appProcessSource,
      upstreamState: 'CLOSED',
      upstreamRttSeconds: null,
      upstreamRetransmits: null,
      waitingOn: null,
      waitingSeconds: null,
      ageSeconds: (now - e.openedAt) / 1000,
      stateAgeSeconds: (now - rec.enteredAt) / 1000,
      idleSeconds: (now - rec.enteredAt) / 1000,
      bytesIn: e.bytesIn,
      bytesOut: e.bytesOut,
      rttSeconds: null,
      retransmits: e.retransmits,
      sendWindow: 0,
      receiveWindow: rec.window,
    };
  }

  /**
   * Where the app shares our network namespace (the sidecar), its sockets are in our kernel's
   * table (or in its namespace's, with `appNetns`): its true state by 4-tuple, from the last
   * snapshot, instead of inferring it.
   */
  private appKernelState(flow: ConnFlow): KernelState | undefined {
    const kernel = this.appSockets;
    return kernel.size === 0 ? undefined : kernel.stateOf(flow.family, flow.remote, flow.remotePort, flow.local, flow.localPort);
  }

  /**
   * Kernel states of synfin's upstream sockets as of the last kernel read: live ones, and closed
   * ones still in the kernel's table (TIME_WAIT), matched by their 4-tuple.
   */
  upstreamSocketStates(): Partial<Record<KernelState, number>> {
    return this.kernel.counts();
  }
}
