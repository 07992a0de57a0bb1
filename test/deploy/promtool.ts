/**
 * promtool (Debian package `prometheus`, /usr/bin/promtool) for the rule and config checks.
 *
 *   describeIfPromtool('alert rules', () => { it(...) });
 *   const r = runPromtool(['check', 'rules', file]);   // { code, output }
 *
 * Missing promtool skips the suite, except in CI (CI=true), where the suite runs and fails with
 * the reason: CI installs promtool (.ci/run), so its absence there is a broken environment.
 */
import { spawnSync } from 'node:child_process';
import { beforeAll, describe } from 'vitest';

let cached: string | null | undefined;

/** Path of promtool, or null when it is not installed. */
export function promtoolPath(): string | null {
  if (cached === undefined) {
    const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    cached = r.error === undefined && r.status === 0 ? 'promtool' : null;
  }
  return cached;
}

export interface PromtoolResult {
  code: number | null;
  /** stdout and stderr together (promtool reports on both). */
  output: string;
}

export function runPromtool(args: readonly string[], cwd?: string): PromtoolResult {
  const r = spawnSync('promtool', args, { encoding: 'utf8', cwd, timeout: 60_000 });
  if (r.error !== undefined) throw r.error;
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

export function describeIfPromtool(name: string, fn: () => void): void {
  if (promtoolPath() !== null) {
    describe(name, fn);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      beforeAll(() => {
        throw new Error('CI=true but promtool is not installed (apt-get install prometheus)');
      });
      fn();
    });
  } else {
    describe.skip(`${name} (skipped: promtool is not installed)`, fn);
  }
}
