// perf script (-F comm,tid,ip,sym,dso) on stdin → user-space samples: leaf JS self, and
// user-space (non-kernel) samples attributed to the nearest JS frame up the chain ("JS-owned").
import fs from 'node:fs';
const text = fs.readFileSync(0, 'utf8');
let total = 0, user = 0;
const self = {}, owned = {}, leafNative = {};
const short = (s) => s.replace(/^JS:\*?~?/, '').replace(/ file:\/\/\/work\/wt\/[^/]+\/dist\//, ' ');
for (const block of text.split(/\n\s*\n/)) {
  const lines = block.split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 2) continue;
  total++;
  const frames = lines.slice(1).map((l) => { const m = /^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)$/.exec(l); return m ? { sym: m[1], dso: m[2] } : { sym: l.trim(), dso: '' }; });
  const leaf = frames[0];
  if (leaf.dso.includes('kernel')) continue;
  user++;
  if (/^JS:/.test(leaf.sym)) self[short(leaf.sym)] = (self[short(leaf.sym)] ?? 0) + 1;
  else leafNative[leaf.sym.slice(0, 70)] = (leafNative[leaf.sym.slice(0, 70)] ?? 0) + 1;
  const js = frames.find((f) => /^JS:/.test(f.sym));
  const k = js ? short(js.sym) : '(no JS frame: event loop, libuv, node)';
  owned[k] = (owned[k] ?? 0) + 1;
}
const top = (o, n) => Object.entries(o).sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${(100 * v / total).toFixed(2).padStart(6)}%  ${k}`).join('\n');
console.log(`samples ${total}, user space ${user} (${(100 * user / total).toFixed(1)}%)`);
console.log('--- JS self (leaf is a JS function), % of all samples'); console.log(top(self, 25));
console.log('--- user-space samples owned by the nearest JS frame (self + builtins/runtime/addon it called), % of all'); console.log(top(owned, 25));
console.log('--- user-space non-JS leaves'); console.log(top(leafNative, 20));
