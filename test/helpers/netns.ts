/**
 * Network namespaces and interface names for tests, cleaned up even when a test fails.
 *
 *   import { NetNs, uniqueIfName, destroyAllNetns } from '../helpers/netns.js';
 *   afterEach(destroyAllNetns);
 *   const ns = NetNs.create();                  // `ip netns add sf-<pid>-<random>`
 *   ns.adoptLink(dev);                          // `ip link set dev DEV netns NS`
 *   ns.addAddress(dev, '198.18.7.1/24'); ns.linkUp(dev);
 *   const out = await ns.exec(process.execPath, ['-e', script]);   // `ip netns exec NS node -e ...`
 *
 * Every name includes the process id and a random suffix, so parallel test files and repeated
 * runs never collide. Everything created here is tracked: destroyAllNetns() (call it from
 * afterEach/afterAll) and a process 'exit' hook delete tracked namespaces (killing the processes
 * still inside them: only ever ones the tests started there) and tracked links. leftovers() lists
 * tracked names that still exist, so a test can check that clean-up worked.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** Names made in this process start with one of these prefixes. */
export const NETNS_PREFIX = 'sf-';

const liveNetns = new Set<NetNs>();
/** Every namespace name ever created here (for leftovers()). */
const createdNetns = new Set<string>();
/** Links to delete at clean-up: name → namespace it lives in (undefined = the current one). */
const trackedLinks = new Map<string, string | undefined>();
/** Every interface name handed out by uniqueIfName() (for leftovers()). */
const issuedIfNames = new Set<string>();

function randomSuffix(len: number): string {
  let s = '';
  while (s.length < len) s += Math.random().toString(36).slice(2);
  return s.slice(0, len);
}

/**
 * A fresh interface name, at most 15 bytes: `prefix` (1-4 chars) + pid in base 36 + random.
 * Recorded so leftovers() can tell whether a device of that name still exists.
 */
export function uniqueIfName(prefix = 'sft'): string {
  if (prefix.length < 1 || prefix.length > 4) throw new RangeError('interface name prefix must be 1-4 characters');
  const pid = process.pid.toString(36);
  const name = `${prefix}${pid}${randomSuffix(15 - prefix.length - pid.length)}`;
  issuedIfNames.add(name);
  return name;
}

/** A fresh namespace name: `sf-<label>-<pid>-<random>`. */
export function uniqueNetnsName(label = 'ns'): string {
  return `${NETNS_PREFIX}${label}-${process.pid}-${randomSuffix(6)}`;
}

export interface ExecResult {
  /** Exit status, or null if killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `ip ...args` in the current namespace; throws with ip's stderr on failure. */
export function ipSync(args: readonly string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string };
    throw new Error(`ip ${args.join(' ')}: ${String(e.stderr ?? err).trim()}`, { cause: err });
  }
}

export class NetNs {
  readonly name: string;
  private destroyed: boolean;

  private constructor(name: string) {
    this.name = name;
    this.destroyed = false;
  }

  /** Creates a uniquely named namespace (with its loopback up) and tracks it for clean-up. */
  static create(label = 'ns'): NetNs {
    ensureExitHook();
    const ns = new NetNs(uniqueNetnsName(label));
    ipSync(['netns', 'add', ns.name]);
    createdNetns.add(ns.name);
    liveNetns.add(ns);
    ns.ip(['link', 'set', 'dev', 'lo', 'up']);
    return ns;
  }

  /** `ip -n NS ...args`, synchronously; returns stdout. */
  ip(args: readonly string[]): string {
    return ipSync(['-n', this.name, ...args]);
  }

  /** Runs `file ...args` inside the namespace and waits for it; never throws on a non-zero exit. */
  exec(file: string, args: readonly string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        'ip',
        ['netns', 'exec', this.name, file, ...args],
        { encoding: 'utf8', env: opts.env ?? process.env, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err !== null && typeof (err as NodeJS.ErrnoException).code === 'string') {
            reject(err); // could not be started at all
            return;
          }
          const e = err as (Error & { code?: number | null; signal?: NodeJS.Signals | null }) | null;
          resolve({ code: e === null ? 0 : (e.code ?? null), signal: e?.signal ?? null, stdout, stderr });
        },
      );
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      else child.stdin?.end();
    });
  }

  /** Runs `file ...args` inside the namespace synchronously; returns stdout, throws on failure. */
  execSync(file: string, args: readonly string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): string {
    return execFileSync('ip', ['netns', 'exec', this.name, file, ...args], {
      encoding: 'utf8',
      env: opts.env ?? process.env,
      input: opts.input,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  }

  /** Spawns `file ...args` inside the namespace (killed by destroy() if still running). */
  spawn(file: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, file, ...args], { stdio: 'pipe', ...opts });
  }

  /** Moves `dev` from the current namespace (or `fromNs`) into this one. */
  adoptLink(dev: string, fromNs?: string): void {
    ipSync([...(fromNs !== undefined ? ['-n', fromNs] : []), 'link', 'set', 'dev', dev, 'netns', this.name]);
  }

  addAddress(dev: string, cidr: string): void {
    this.ip(['addr', 'add', cidr, 'dev', dev]);
  }

  addRoute(cidr: string, dev: string): void {
    this.ip(['route', 'add', cidr, 'dev', dev]);
  }

  linkUp(dev: string): void {
    this.ip(['link', 'set', 'dev', dev, 'up']);
  }

  setMtu(dev: string, mtu: number): void {
    this.ip(['link', 'set', 'dev', dev, 'mtu', String(mtu)]);
  }

  /** Names of the interfaces in the namespace. */
  links(): string[] {
    const parsed = JSON.parse(this.ip(['-j', 'link', 'show'])) as Array<{ ifname: string }>;
    return parsed.map((l) => l.ifname);
  }

  /** Kills the processes still inside (ones the tests started) and deletes the namespace. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveNetns.delete(this);
    let pids: string[] = [];
    try {
      pids = ipSync(['netns', 'pids', this.name]).split(/\s+/).filter((p) => p.length > 0);
    } catch {
      // already gone
    }
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    try {
      ipSync(['netns', 'delete', this.name]);
    } catch {
      // already gone
    }
  }
}

/** Deletes `dev` (in the current namespace, or `netns`) at clean-up, e.g. a persistent TUN device. */
export function trackLink(dev: string, netns?: string): void {
  ensureExitHook();
  trackedLinks.set(dev, netns);
  issuedIfNames.add(dev);
}

/** Destroys every live namespace and tracked link made by this process. Safe to call often. */
export function destroyAllNetns(): void {
  for (const [dev, netns] of trackedLinks) {
    try {
      ipSync([...(netns !== undefined ? ['-n', netns] : []), 'link', 'delete', 'dev', dev]);
    } catch {
      // not there (any more)
    }
  }
  trackedLinks.clear();
  for (const ns of [...liveNetns]) ns.destroy();
}

/**
 * Names this process created (namespaces, and interface names from uniqueIfName/trackLink) that
 * still exist: namespaces in `ip netns list`, interfaces in the current namespace.
 */
export function leftovers(): string[] {
  const out: string[] = [];
  const netnsNow = new Set(
    ipSync(['netns', 'list'])
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.length > 0),
  );
  for (const n of createdNetns) if (netnsNow.has(n)) out.push(`netns ${n}`);
  const linksNow = new Set((JSON.parse(ipSync(['-j', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname));
  for (const n of issuedIfNames) if (linksNow.has(n)) out.push(`link ${n}`);
  return out;
}

let exitHook = false;
function ensureExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', destroyAllNetns);
}
