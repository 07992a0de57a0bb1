// The benchmark's small C programs (bench/tools/*.c), compiled on first use into bench/.build/.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSync } from './proc.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BENCH_DIR = path.resolve(here, '..');
const BUILD_DIR = path.join(BENCH_DIR, '.build');

const TOOLS = {
  connrate: { libs: [] },
  tcpserv: { libs: [] },
  'nfq-impair': { libs: ['-lnetfilter_queue', '-lnfnetlink'] },
  'tun-floor': { libs: [] },
};

/** Path of the compiled tool, building it when missing or older than its source. */
export function tool(name) {
  const spec = TOOLS[name];
  if (spec === undefined) throw new Error(`unknown tool ${name}`);
  const src = path.join(BENCH_DIR, 'tools', `${name}.c`);
  const bin = path.join(BUILD_DIR, name);
  const fresh = fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(src).mtimeMs;
  if (!fresh) {
    fs.mkdirSync(BUILD_DIR, { recursive: true });
    runSync('gcc', ['-O2', '-Wall', '-o', bin, src, ...spec.libs]);
  }
  return bin;
}

/** Fails early, with the fix, when a program the benchmark drives is not installed. */
export function checkPrerequisites(needed) {
  const missing = needed.filter((p) => {
    try {
      runSync('sh', ['-c', `command -v ${p}`]);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(`missing programs: ${missing.join(', ')}; install them with: sudo bash bench/setup.sh`);
  }
}
