#!/usr/bin/env node
// The long-running fuzz target: `npm run fuzz -- [--minutes N | --seconds N] [--seed N] [--report FILE]`.
// Runs test/fuzz/stack-long.fuzz.ts (random and mutated packets into one stack, with periodic
// drains and heap checks) for the given time (default 10 minutes) and exits non-zero on the first
// broken invariant, printing the seed, epoch and operation to reproduce it.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
let seconds = 600;
let seed = String(Date.now() % 2 ** 31);
let report = '';
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const v = args[i + 1];
  if ((a === '--minutes' || a === '--seconds' || a === '--seed' || a === '--report') && v === undefined) {
    console.error(`${a} needs a value`);
    process.exit(2);
  }
  if (a === '--minutes') seconds = Number(v) * 60, i++;
  else if (a === '--seconds') seconds = Number(v), i++;
  else if (a === '--seed') seed = v, i++;
  else if (a === '--report') report = path.resolve(v), i++;
  else if (/^\d+$/.test(a)) seconds = Number(a);
  else {
    console.error('usage: npm run fuzz -- [--minutes N | --seconds N] [--seed N] [--report FILE]');
    process.exit(2);
  }
}
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error('the duration must be a positive number');
  process.exit(2);
}
console.log(`fuzzing the stack for ${seconds} s, seed ${seed}`);
const r = spawnSync(
  process.execPath,
  [path.join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--config', path.join(root, 'fuzz/vitest.config.mjs')],
  {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, FUZZ_SECONDS: String(seconds), FUZZ_SEED: seed, FUZZ_REPORT: report },
  },
);
process.exit(r.status ?? 1);
