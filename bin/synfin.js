#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
import('../dist/cli.js').then((m) => m.main(process.argv.slice(2))).catch((err) => {
  process.stderr.write(`synfin: ${err && err.message ? err.message : String(err)}\n`);
  process.exit(2);
});
