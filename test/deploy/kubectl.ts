/**
 * kubectl, for `kubectl kustomize` (no cluster needed) of deploy/kubernetes.
 *
 *   describeIfKubectl('the component', () => { it(...) });
 *   const docs = kustomize('deploy', 'kubernetes', 'example');
 *
 * Missing kubectl skips the suite, except in CI (CI=true), where the suite runs and fails with
 * the reason: kubectl is part of the CI machines, so its absence there is a broken environment.
 */
import { spawnSync } from 'node:child_process';
import { beforeAll, describe } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { repoPath } from './code.js';

let cached: boolean | undefined;

export function kubectlInstalled(): boolean {
  if (cached === undefined) {
    const r = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
    cached = r.error === undefined && r.status === 0;
  }
  return cached;
}

/** `kubectl kustomize DIR` of a directory of the repository, as plain objects. */
export function kustomize<T = Record<string, unknown>>(...dir: string[]): T[] {
  const r = spawnSync('kubectl', ['kustomize', repoPath(...dir)], { encoding: 'utf8', timeout: 60_000 });
  if (r.error !== undefined) throw r.error;
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir.join('/')}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as T);
}

export function describeIfKubectl(name: string, fn: () => void): void {
  if (kubectlInstalled()) {
    describe(name, fn);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      beforeAll(() => {
        throw new Error('CI=true but kubectl is not installed (kubectl kustomize renders deploy/kubernetes)');
      });
      // The tests themselves, so the hook's failure fails each of them (a suite with no test runs no hook).
      fn();
    });
  } else {
    describe.skip(`${name} (skipped: kubectl is not installed)`, () => {});
  }
}
