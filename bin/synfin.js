#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
// main() sets the exit code itself; what reaches here is an install that cannot start (exit 1).
import('../dist/cli.js').then((m) => m.main(process.argv.slice(2))).catch((err) => {
  process.stderr.write(`synfin: ${err && err.message ? String(err.message).split('\n')[0] : String(err)}\n`);
  process.exit(1);
});
