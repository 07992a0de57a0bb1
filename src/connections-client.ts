/**
 * `synfin connections`: the connection table of a running synfin, read from its API
 * (/api/connections, page after page) and printed in aligned columns like `ss`. Plain Node (fetch),
 * so it works from `kubectl exec` into the image, which has no curl.
 */
import http from 'node:http';
import { ApiClientError, ConfigError } from './errors.js';
import { parseListen } from './config.js';
import { STATE_NAMES } from './tcp/state.js';

export interface ConnectionsQuery {
  waitingOn?: string;
  service?: string;
  state?: string;
}

/** What the command reads of a row (fields another synfin version may lack are optional). */
export interface ApiRow {
  id: number;
  state: string;
  appState?: string | null;
  appStateSource?: string;
  upstreamState?: string | null;
  waitingOn?: string | null;
  client?: string;
  destination?: string;
  ageSeconds?: number;
  idleSeconds?: number;
  bytesIn?: number;
  bytesOut?: number;
  service?: string | null;
  appProcess?: { pid: number; command: string; fd?: number } | null;
}

interface ApiPage {
  count: number;
  connections: ApiRow[];
  next: string | null;
}

/** Rows asked for per request: the API's default page, a few ms of synfin's event loop each. */
const PAGE_LIMIT = 1000;
const REQUEST_TIMEOUT_MS = 5000;

/**
 * The base URL to reach synfin at from its own host (or pod): a wildcard listen address
 * (0.0.0.0, [::]) is asked on 127.0.0.1, which a dual-stack [::] listener accepts too.
 */
export function apiBase(listen: string): string {
  const { host, port } = parseListen(listen);
  const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/** Checks the filters before anything is asked (bad usage is exit 2, not a request). */
export function checkQuery(q: ConnectionsQuery): void {
  if (q.waitingOn !== undefined && q.waitingOn !== 'app' && q.waitingOn !== 'upstream') {
    throw new ConfigError(`--waiting-on: "${q.waitingOn}" is not app or upstream`);
  }
  if (q.state !== undefined && !(STATE_NAMES as readonly string[]).includes(q.state.toUpperCase())) {
    throw new ConfigError(`--state: "${q.state}" is not one of ${STATE_NAMES.join(', ')}`);
  }
  if (q.service !== undefined && q.service.trim() === '') throw new ConfigError('--service: expected a service name');
}

/** Every row matching the filters, in id order (the order connections were opened), page by page. */
export async function fetchConnections(base: string, q: ConnectionsQuery): Promise<ApiRow[]> {
  const params = new URLSearchParams();
  if (q.state !== undefined) params.set('state', q.state.toUpperCase());
  if (q.waitingOn !== undefined) params.set('waitingOn', q.waitingOn);
  if (q.service !== undefined) params.set('service', q.service);
  params.set('limit', String(PAGE_LIMIT));
  const rows: ApiRow[] = [];
  let cursor: string | null = null;
  do {
    const pageParams = new URLSearchParams(params);
    if (cursor !== null) pageParams.set('cursor', cursor);
    const page = await getPage(`${base}/api/connections?${pageParams.toString()}`);
    rows.push(...page.connections);
    cursor = page.next;
  } while (cursor !== null);
  return rows;
}

/** GET with node:http (fetch refuses the ports of the WHATWG "bad port" list, 6000 among them). */
function httpGet(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'application/json' }, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer in ${REQUEST_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

async function getPage(url: string): Promise<ApiPage> {
  const origin = new URL(url).origin;
  let res: { status: number; text: string };
  try {
    res = await httpGet(url);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ApiClientError('ERR_API_UNREACHABLE', `cannot reach synfin at ${origin} (${why}): is it running, and is --listen / SYNFIN_LISTEN its address?`, { cause: err });
  }
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch {
    throw new ApiClientError('ERR_API_RESPONSE', `${origin} answered HTTP ${res.status} with something that is not synfin's API`);
  }
  if (res.status < 200 || res.status > 299) {
    const error = (body as { error?: unknown } | null)?.error;
    throw new ApiClientError('ERR_API_RESPONSE', `synfin answered HTTP ${res.status}: ${typeof error === 'string' ? error : 'no reason given'}`);
  }
  const page = body as Partial<ApiPage> | null;
  if (page === null || !Array.isArray(page.connections)) throw new ApiClientError('ERR_API_RESPONSE', `${origin} answered without a connection table: not synfin's API?`);
  return { count: page.count ?? page.connections.length, connections: page.connections, next: typeof page.next === 'string' ? page.next : null };
}

/** 0.4s, 12s, 5m03s, 2h04m, 3d02h: short and sortable by eye. */
export function formatSeconds(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '-';
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(Math.floor(s % 60))}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`;
}

interface Column {
  title: string;
  right: boolean;
  cell(r: ApiRow): string;
}

const COLUMNS: Column[] = [
  { title: 'ID', right: true, cell: (r) => String(r.id) },
  { title: 'STATE', right: false, cell: (r) => r.state },
  // "*": inferred from the segments, not read from the app's kernel socket (another namespace).
  { title: 'APP', right: false, cell: (r) => (r.appState ?? '-') + (r.appStateSource === 'inferred' ? '*' : '') },
  { title: 'UPSTREAM', right: false, cell: (r) => r.upstreamState ?? '-' },
  { title: 'WAITING', right: false, cell: (r) => r.waitingOn ?? '-' },
  { title: 'CLIENT', right: false, cell: (r) => r.client ?? '-' },
  { title: 'DESTINATION', right: false, cell: (r) => r.destination ?? '-' },
  { title: 'AGE', right: true, cell: (r) => formatSeconds(r.ageSeconds) },
  { title: 'IDLE', right: true, cell: (r) => formatSeconds(r.idleSeconds) },
  { title: 'IN', right: true, cell: (r) => String(r.bytesIn ?? '-') },
  { title: 'OUT', right: true, cell: (r) => String(r.bytesOut ?? '-') },
];
const SERVICE: Column = { title: 'SERVICE', right: false, cell: (r) => r.service ?? '-' };
const PROCESS: Column = { title: 'PROCESS', right: false, cell: (r) => (r.appProcess ? `${r.appProcess.command}[${r.appProcess.pid}]` : '-') };

/** The rows as aligned columns with a header line; SERVICE and PROCESS only when some row has one. */
export function formatTable(rows: readonly ApiRow[]): string {
  const cols = [...COLUMNS];
  if (rows.some((r) => r.service !== undefined && r.service !== null)) cols.push(SERVICE);
  if (rows.some((r) => r.appProcess !== undefined && r.appProcess !== null)) cols.push(PROCESS);
  const cells = rows.map((r) => cols.map((c) => c.cell(r)));
  const widths = cols.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (cols[i]!.right ? v.padStart(widths[i]!) : i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(cols.map((c) => c.title)), ...cells.map(line)].join('\n') + '\n';
}

export interface ConnectionsOptions extends ConnectionsQuery {
  listen: string;
  /** Seconds between refreshes; null prints once. */
  watchSeconds: number | null;
  out?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Prints the table once, or every watchSeconds until SIGINT/SIGTERM (then resolves). */
export async function showConnections(opts: ConnectionsOptions): Promise<void> {
  checkQuery(opts);
  const base = apiBase(opts.listen);
  const out = opts.out ?? process.stdout;
  if (opts.watchSeconds === null) {
    out.write(formatTable(await fetchConnections(base, opts)));
    return;
  }
  if (!(opts.watchSeconds > 0)) throw new ConfigError(`--watch: ${opts.watchSeconds} must be a number of seconds > 0`);
  let stopped = false;
  let wake: (() => void) | null = null;
  const stop = (): void => {
    stopped = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    // The first read must work (a wrong address is an error, not an empty screen); later
    // failures are shown on the screen and retried, as watch(1) does.
    let first = true;
    while (!stopped) {
      let body: string;
      try {
        const rows = await fetchConnections(base, opts);
        body = formatTable(rows) + `${rows.length} connection${rows.length === 1 ? '' : 's'}\n`;
      } catch (err) {
        if (first) throw err;
        body = `synfin: ${(err as Error).message}\n`;
      }
      first = false;
      const head = `every ${opts.watchSeconds}s: ${base}/api/connections  ${new Date().toISOString()}  (Ctrl-C to stop)\n\n`;
      out.write((out.isTTY === true ? '\x1b[H\x1b[2J' : '') + head + body + (out.isTTY === true ? '' : '\n'));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, opts.watchSeconds! * 1000);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = null;
    }
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
}
