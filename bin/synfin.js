#!/usr/bin/env -S node --min-semi-space-size=8 --max-semi-space-size=8
// The young generation is fixed at 2 × 8 MiB, as in the image (deploy/Dockerfile): node lets a burst of
// connections grow it to 2 × 16 MiB and never gives that back (BENCHMARKS.md, "Memory per idle connection").
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
// main() sets the exit code itself; what reaches here is an install that cannot start (exit 1).
import('../dist/cli.js').then((m) => m.main(process.argv.slice(2))).catch((err) => {
  process.stderr.write(`synfin: ${err && err.message ? String(err.message).split('\n')[0] : String(err)}\n`);
  process.exit(1);
});
