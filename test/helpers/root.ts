/**
 * Gates for tests that need root, /dev/net/tun and network namespaces.
 *
 *   import { describeIfTun } from '../helpers/root.js';
 *   describeIfTun('TUN: receive', () => { it(...) });
 *
 * When the machine cannot run them the suite is skipped, EXCEPT in CI (process.env.CI === 'true'),
 * where CI promises root, /dev/net/tun and `ip netns`: there the suite runs and every test in it
 * fails with the reason, so a broken CI environment is loud instead of silently green.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { beforeAll, describe } from 'vitest';

export interface TunEnvironment {
  /** Root, /dev/net/tun opens read-write, and `ip netns add/delete` works. */
  readonly ok: boolean;
  /** Why not, in one line ('' when ok). */
  readonly reason: string;
}

let cached: TunEnvironment | undefined;

/** Probes the machine once per process (the probe creates and deletes a namespace). */
export function tunEnvironment(): TunEnvironment {
  if (cached === undefined) cached = probe();
  return cached;
}

/** True when tests may create TUN devices and network namespaces here. */
export function canUseTun(): boolean {
  return tunEnvironment().ok;
}

/** True in CI, where environment-dependent tests must run (and fail) rather than skip. */
export function inCI(): boolean {
  return process.env.CI === 'true';
}

/**
 * `describe` for suites that need TUN devices and namespaces: runs them when canUseTun(); skips
 * them otherwise, unless in CI, where the suite runs with a beforeAll that fails with the reason.
 */
export function describeIfTun(name: string, fn: () => void): void {
  const env = tunEnvironment();
  if (env.ok) {
    describe(name, fn);
  } else if (inCI()) {
    describe(name, () => {
      beforeAll(() => {
        throw new Error(`CI=true but this machine cannot run TUN tests: ${env.reason}`);
      });
      fn();
    });
  } else {
    describe.skip(`${name} (skipped: ${env.reason})`, fn);
  }
}

function probe(): TunEnvironment {
  if (process.platform !== 'linux') return { ok: false, reason: `TUN tests need Linux, not ${process.platform}` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { ok: false, reason: 'not running as root' };
  }
  try {
    fs.closeSync(fs.openSync('/dev/net/tun', 'r+'));
  } catch (err) {
    return { ok: false, reason: `cannot open /dev/net/tun (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
  const probeNs = `sfprobe-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    execFileSync('ip', ['netns', 'add', probeNs], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; code?: string };
    const detail = e.code === 'ENOENT' ? 'ip (iproute2) is not installed' : String(e.stderr ?? err).trim();
    return { ok: false, reason: `cannot create a network namespace: ${detail}` };
  }
  try {
    execFileSync('ip', ['netns', 'delete', probeNs], { stdio: 'ignore' });
  } catch {
    return { ok: false, reason: `cannot delete network namespace ${probeNs}` };
  }
  return { ok: true, reason: '' };
}
