import fs from 'node:fs';
const text = fs.readFileSync(0, 'utf8'); let total = 0; const c = {};
for (const block of text.split(/\n\s*\n/)) {
  const lines = block.split('\n').filter((l) => l.trim() !== ''); if (lines.length < 2) continue; total++;
  const frames = lines.slice(1).map((l) => { const m = /^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)$/.exec(l); return m ? { sym: m[1], dso: m[2] } : { sym: l.trim(), dso: '' }; });
  if (frames[0].dso.includes('kernel')) continue;
  if (/^(read|__GI___libc_write|write|epoll_pwait|__GI___writev|writev)$/.test(frames[0].sym)) { c['libc syscall stubs (charged to entry by the categories)'] = (c['libc syscall stubs (charged to entry by the categories)'] ?? 0) + 1; continue; }
  const js = frames.find((f) => /^JS:/.test(f.sym));
  let k = '(no JS frame)';
  if (js) { const m = /dist\/([a-z-]+)\//.exec(js.sym) ?? /dist\/([a-z-]+)\.js/.exec(js.sym); k = m ? m[1] : /node:internal\/timers|node:timers/.test(js.sym) ? 'node timers' : 'node other'; }
  c[k] = (c[k] ?? 0) + 1;
}
for (const [k, v] of Object.entries(c).sort((a, b) => b[1] - a[1])) console.log((100 * v / total).toFixed(2).padStart(6) + '%', k);
