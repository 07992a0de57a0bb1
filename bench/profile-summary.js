// Summarises a V8 .cpuprofile (node --cpu-prof): the functions with the most self time, then
// synfin's own functions (scripts under dist/) by total time (their callees included).
//
//   node bench/profile-summary.js FILE.cpuprofile [TOP=25]
//
// Self time of a node = the sum of the sampling intervals (timeDeltas) of the samples that landed
// in it; nodes of the same function (same name, script and line) are added together, whatever
// their callers. Prints a table: self ms, share of all samples, function, script:line.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * @returns {{ totalMs: number, rows: { name: string, where: string, selfMs: number, share: number }[],
 *   inclusive: { name: string, where: string, totalMs: number, share: number }[] }}
 */
export function summarize(profile, top = 25) {
  const byId = new Map();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let totalUs = 0;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time since the previous sample: charge it to this sample's node.
    const dt = Math.max(0, deltas[i] ?? 0);
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + dt);
    totalUs += dt;
  }
  const byFunction = new Map();
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)?.callFrame;
    if (cf === undefined) continue;
    const name = cf.functionName || '(anonymous)';
    const file = cf.url ? shorten(cf.url) : '';
    const where = file ? `${file}:${cf.lineNumber + 1}` : '';
    const key = `${name}\u0000${where}`;
    const e = byFunction.get(key) ?? { name, where, selfUs: 0 };
    e.selfUs += us;
    byFunction.set(key, e);
  }
  // Inclusive ("total") time: each function once per sample, however often it is on the stack.
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (id) => {
    const cf = byId.get(id)?.callFrame;
    if (cf === undefined) return null;
    const file = cf.url ? shorten(cf.url) : '';
    return `${cf.functionName || '(anonymous)'}\u0000${file ? `${file}:${cf.lineNumber + 1}` : ''}`;
  };
  const totalByKey = new Map();
  for (const [id, us] of selfUs) {
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = keyOf(cur);
      if (k === null || seen.has(k)) continue;
      seen.add(k);
      totalByKey.set(k, (totalByKey.get(k) ?? 0) + us);
    }
  }
  const inclusive = [...totalByKey.entries()]
    .filter(([k]) => k.includes('dist/'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, us]) => {
      const [name, where] = k.split('\u0000');
      return { name, where, totalMs: us / 1000, share: totalUs > 0 ? us / totalUs : 0 };
    });
  const rows = [...byFunction.values()]
    .sort((a, b) => b.selfUs - a.selfUs)
    .slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.selfUs / 1000, share: totalUs > 0 ? e.selfUs / totalUs : 0 }));
  return { totalMs: totalUs / 1000, rows, inclusive };
}

/** file:///…/dist/stack/stack.js → dist/stack/stack.js; node:internal/… stays as it is. */
function shorten(url) {
  const m = /\/(dist|node_modules)\/(.*)$/.exec(url);
  if (m !== null) return `${m[1]}/${m[2]}`;
  return url.replace(/^file:\/\//, '');
}

export function formatSummary(title, s) {
  const lines = [`${title}: ${(s.totalMs / 1000).toFixed(1)} s sampled`, '  self ms   share  function  (script:line)'];
  for (const r of s.rows) {
    lines.push(`${r.selfMs.toFixed(0).padStart(9)}  ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.name}  ${r.where ? `(${r.where})` : ''}`);
  }
  if (s.inclusive.length > 0) {
    lines.push('', `  synfin's own functions (dist/) by total time, callees included:`, '  total ms   share  function  (script:line)');
    for (const r of s.inclusive) lines.push(`${r.totalMs.toFixed(0).padStart(9)}  ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.name}  (${r.where})`);
  }
  return lines.join('\n');
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [file, topText] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: node bench/profile-summary.js FILE.cpuprofile [TOP]\n');
    process.exit(2);
  }
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  process.stdout.write(formatSummary(path.basename(file), summarize(profile, Number(topText ?? 25))) + '\n');
}
