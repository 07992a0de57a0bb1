/**
 * iproute2, run synchronously: device configuration happens once at setup, and a synchronous
 * call keeps errors at the line that caused them.
 */
import { execFileSync } from 'node:child_process';
import { IpCommandError } from '../errors.js';

export interface IpOptions {
  /** Run in this named network namespace (`ip -n NS ...`) instead of the current one. */
  netns?: string | undefined;
}

/** Runs `ip [-n NS] ...args` and returns its stdout; throws IpCommandError on failure. */
export function runIp(args: readonly string[], opts?: IpOptions): string {
  const argv = ipArgv(args, opts);
  try {
    return execFileSync('ip', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string | Buffer; status?: number | null };
    let stderr = e.stderr === undefined ? '' : String(e.stderr);
    stderr = stderr.trim().replace(/\s*\n\s*/g, '; ');
    if (stderr.length === 0 && e.code !== undefined && typeof e.code === 'string') stderr = `${e.code}`;
    throw new IpCommandError(argv, stderr, typeof e.status === 'number' ? e.status : null, { cause: err });
  }
}

function ipArgv(args: readonly string[], opts: IpOptions | undefined): string[] {
  return opts?.netns !== undefined ? ['-n', opts.netns, ...args] : [...args];
}

/** The MTU of `dev`, read with `ip -j link show`. */
export function linkMtu(dev: string, opts?: IpOptions): number {
  const args = ['-j', 'link', 'show', 'dev', dev];
  const out = runIp(args, opts);
  let mtu: unknown;
  try {
    mtu = (JSON.parse(out) as Array<{ mtu?: unknown }>)[0]?.mtu;
  } catch {
    mtu = undefined;
  }
  if (typeof mtu !== 'number') {
    throw new IpCommandError(ipArgv(args, opts), `no mtu in output: ${out.trim().replace(/\s*\n\s*/g, ' ')}`, 0);
  }
  return mtu;
}
