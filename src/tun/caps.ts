/**
 * Least privilege (issue 20, item 7). synfin needs CAP_NET_ADMIN only to create or change its TUN
 * device; attaching to a device that is owned by its uid and already configured needs nothing
 * (src/tun/configure.ts changes only what differs). When `synfin run` holds any capability once
 * the device is ready, it gives all of them up, keeping only what an option it was given needs
 * (capabilitiesNeeded), before it listens or opens a single upstream socket.
 *
 * Capabilities are per thread and no system call changes another thread's (native/process/caps.cc):
 * the V8 and libuv threads, and Node's SIGUSR1 thread that blocks every signal, would keep them.
 * So the main thread drops them (and sets no_new_privs) and then execve()s synfin again with the
 * same argv and environment, the TUN fd left open and named in _SYNFIN_TUN_FD: the exec ends
 * every other thread, and every thread of the new image starts from the main thread's empty
 * sets. The new process adopts the fd (no TUNSETIFF, no capability), finds the device as the
 * first one left it, and goes on. Cost: one more Node start-up, once.
 */
import fs from 'node:fs';
import { CapabilityError } from '../errors.js';
import { loadAddon } from '../native/addon.js';
import type { Tun } from './tun.js';

/** Capability numbers (include/uapi/linux/capability.h), the names `setpriv`/`capsh` use. */
export const CAPABILITY_NUMBERS: Readonly<Record<string, number>> = {
  chown: 0, dac_override: 1, dac_read_search: 2, fowner: 3, fsetid: 4, kill: 5, setgid: 6, setuid: 7,
  setpcap: 8, linux_immutable: 9, net_bind_service: 10, net_broadcast: 11, net_admin: 12, net_raw: 13,
  ipc_lock: 14, ipc_owner: 15, sys_module: 16, sys_rawio: 17, sys_chroot: 18, sys_ptrace: 19, sys_pacct: 20,
  sys_admin: 21, sys_boot: 22, sys_nice: 23, sys_resource: 24, sys_time: 25, sys_tty_config: 26, mknod: 27,
  lease: 28, audit_write: 29, audit_control: 30, setfcap: 31, mac_override: 32, mac_admin: 33, syslog: 34,
  wake_alarm: 35, block_suspend: 36, audit_read: 37, perfmon: 38, bpf: 39, checkpoint_restore: 40,
};

/** The environment variables the exec hands over (removed from process.env by takeInheritedTun). */
export const INHERITED_TUN_FD_ENV = '_SYNFIN_TUN_FD';
export const INHERITED_CHANGES_ENV = '_SYNFIN_DEVICE_CHANGES';
/** With --workers N > 1: the N queue fds of the multi-queue device, comma-separated, in queue order. */
export const INHERITED_QUEUE_FDS_ENV = '_SYNFIN_TUN_QUEUE_FDS';

export interface CapabilitySets {
  inheritable: bigint;
  permitted: bigint;
  effective: bigint;
  bounding: bigint;
  ambient: bigint;
}

/** The Cap* lines of a /proc/<pid>[/task/<tid>]/status text. */
export function parseCapabilities(status: string): CapabilitySets {
  const get = (field: string): bigint => {
    const m = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status);
    return m === null ? 0n : BigInt(`0x${m[1]}`);
  };
  return { inheritable: get('CapInh'), permitted: get('CapPrm'), effective: get('CapEff'), bounding: get('CapBnd'), ambient: get('CapAmb') };
}

/** This thread's sets (the main thread's when called from JavaScript). */
export function ownCapabilities(): CapabilitySets {
  return parseCapabilities(fs.readFileSync('/proc/thread-self/status', 'utf8'));
}

/** CapEff and CapPrm of every thread of this process, by thread id. */
export function threadCapabilities(): Array<{ tid: number; effective: bigint; permitted: bigint }> {
  const out: Array<{ tid: number; effective: bigint; permitted: bigint }> = [];
  for (const tid of fs.readdirSync('/proc/self/task')) {
    let status: string;
    try {
      status = fs.readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const c = parseCapabilities(status);
    out.push({ tid: Number(tid), effective: c.effective, permitted: c.permitted });
  }
  return out;
}

/** Capability names in `mask`, e.g. ['net_admin']. */
export function capabilityNames(mask: bigint): string[] {
  const names: string[] = [];
  for (const [name, n] of Object.entries(CAPABILITY_NUMBERS)) if ((mask >> BigInt(n)) & 1n) names.push(name);
  return names;
}

/**
 * True when the process could use a capability now or pass one on, beyond those named in `keep`:
 * the bounding set alone does not count.
 */
export function holdsCapabilities(c: CapabilitySets, keep: readonly string[] = []): boolean {
  let allowed = 0n;
  for (const name of keep) allowed |= 1n << BigInt(CAPABILITY_NUMBERS[name] ?? 63);
  return ((c.permitted | c.effective | c.ambient | c.inheritable) & ~allowed) !== 0n;
}

/**
 * What synfin still needs once its device is ready, for the options given. Reading its own
 * sockets (sock_diag, TCP_INFO, /proc/net/tcp of its namespace), binding --upstream-bind (a local
 * address) and everything else it does needs nothing; the one exception is an HTTP port below
 * net.ipv4.ip_unprivileged_port_start, as the listen comes after the drop.
 */
export function capabilitiesNeeded(listenPort: number, unprivilegedPortStart = readUnprivilegedPortStart()): string[] {
  return listenPort !== 0 && listenPort < unprivilegedPortStart ? ['net_bind_service'] : [];
}

function readUnprivilegedPortStart(): number {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim());
  } catch {
    return 1024;
  }
}

/**
 * The TUN fd (and the device changes made) handed over by the process that exec'ed this one, or
 * null. The variables are removed from process.env so nothing started later sees them.
 */
export function takeInheritedTun(env: NodeJS.ProcessEnv = process.env): { fd: number; changes: string[] } | null {
  const raw = env[INHERITED_TUN_FD_ENV];
  const changes = env[INHERITED_CHANGES_ENV];
  delete env[INHERITED_TUN_FD_ENV];
  delete env[INHERITED_CHANGES_ENV];
  if (raw === undefined) return null;
  const fd = Number(raw);
  if (!Number.isInteger(fd) || fd < 3) throw new CapabilityError(`${INHERITED_TUN_FD_ENV}="${raw}" is not a file descriptor`);
  return { fd, changes: changes === undefined || changes === '' ? [] : changes.split('\n') };
}

/**
 * The queue fds (--workers N > 1) and device changes handed over by the process that exec'ed
 * this one, or null; the variables are removed from process.env.
 */
export function takeInheritedQueues(env: NodeJS.ProcessEnv = process.env): { fds: number[]; changes: string[] } | null {
  const raw = env[INHERITED_QUEUE_FDS_ENV];
  const changes = env[INHERITED_CHANGES_ENV];
  delete env[INHERITED_QUEUE_FDS_ENV];
  delete env[INHERITED_CHANGES_ENV];
  if (raw === undefined) return null;
  const fds = raw.split(',').map(Number);
  if (fds.length === 0 || fds.some((fd) => !Number.isInteger(fd) || fd < 3)) throw new CapabilityError(`${INHERITED_QUEUE_FDS_ENV}="${raw}" is not a list of file descriptors`);
  return { fds, changes: changes === undefined || changes === '' ? [] : changes.split('\n') };
}

/**
 * Drops every capability but `keep` in this thread, sets no_new_privs and re-executes synfin
 * (same node, node flags, script and arguments) with `tun`'s fd left open (with an array, the
 * fds of every queue, named in INHERITED_QUEUE_FDS_ENV). Never returns; throws CapabilityError
 * (ERR_CAPABILITIES) when the kernel refuses.
 */
export function reexecWithoutCapabilities(tun: Tun | readonly Tun[], keep: readonly string[], changes: readonly string[]): never {
  const addon = loadAddon();
  const numbers = keep.map((name) => {
    const n = CAPABILITY_NUMBERS[name];
    if (n === undefined) throw new CapabilityError(`unknown capability "${name}"`);
    return n;
  });
  const env: string[] = [];
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && k !== INHERITED_TUN_FD_ENV && k !== INHERITED_QUEUE_FDS_ENV && k !== INHERITED_CHANGES_ENV) env.push(`${k}=${v}`);
  }
  const fds = Array.isArray(tun) ? (tun as readonly Tun[]).map((q) => q.fd) : [(tun as Tun).fd];
  env.push(Array.isArray(tun) ? `${INHERITED_QUEUE_FDS_ENV}=${fds.join(',')}` : `${INHERITED_TUN_FD_ENV}=${fds[0]}`, `${INHERITED_CHANGES_ENV}=${changes.join('\n')}`);
  const argv = [process.argv0, ...process.execArgv, ...process.argv.slice(1)];
  try {
    addon.dropCapabilities(numbers);
    addon.execve(process.execPath, argv, env, fds);
  } catch (err) {
    throw new CapabilityError(`cannot give up capabilities once the device is ready: ${(err as Error).message}`, { cause: err });
  }
  throw new CapabilityError('execve returned');
}
