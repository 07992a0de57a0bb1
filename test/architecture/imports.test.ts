/**
 * The floors of ARCHITECTURE.md, kept true: every import in src/ goes down (or sideways where the
 * table says so), never up. A new import that breaks a floor fails here instead of accumulating.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = path.join(ROOT, 'src');

/**
 * What each part of src/ may import besides itself. `errors` is the catalogue every part shares;
 * `entry` is the files directly in src/ (configuration, runtime, CLI, demo), which may import
 * anything and which nothing but entry imports.
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  errors: [],
  wire: ['errors'],
  native: ['errors'],
  tcp: ['wire', 'errors'],
  stack: ['tcp', 'wire', 'errors'],
  tun: ['wire', 'native', 'errors'],
  proxy: ['stack', 'tcp', 'wire', 'native', 'errors'],
  observability: ['stack', 'tcp', 'wire', 'native', 'errors'],
  http: ['observability', 'stack', 'tcp', 'wire', 'errors'],
  entry: ['http', 'observability', 'proxy', 'tun', 'stack', 'tcp', 'wire', 'native', 'errors'],
};

/** The part a file of src/ belongs to: its first folder (tcp/cc is tcp), or entry/errors at the top (src/workers/ is entry). */
function partOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  if (rel.length === 1) return rel[0]!.replace(/\.(js|ts)$/, '') === 'errors' ? 'errors' : 'entry';
  // --workers' main thread and worker thread run the runtime: they are entry too.
  if (rel[0] === 'workers') return 'entry';
  return rel[0]!;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return sourceFiles(p);
    return /\.(ts|js|mjs)$/.test(d.name) ? [p] : [];
  });
}

/** Relative specifiers of static imports, re-exports and dynamic imports (type-only ones included). */
function importsOf(text: string): string[] {
  const specs: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"](\.[^'"]+)['"]|\bimport\s*\(\s*['"](\.[^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"](\.[^'"]+)['"]/g;
  for (const m of text.matchAll(re)) specs.push((m[1] ?? m[2] ?? m[3])!);
  return specs;
}

interface Edge {
  from: string;
  to: string;
  file: string;
  spec: string;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    if (file.includes(`${path.sep}http${path.sep}page${path.sep}`)) continue; // the browser's script
    const from = partOf(file);
    for (const spec of importsOf(fs.readFileSync(file, 'utf8'))) {
      const target = path.resolve(path.dirname(file), spec);
      const to = partOf(target);
      if (to !== from) out.push({ from, to, file: path.relative(ROOT, file), spec });
    }
  }
  return out;
}

describe('import direction (ARCHITECTURE.md)', () => {
  it('finds the imports it checks (the reader is not blind)', () => {
    const all = edges();
    // A few edges that exist by design: if the reader stopped seeing imports, these would vanish.
    expect(all.some((e) => e.from === 'tcp' && e.to === 'wire')).toBe(true);
    expect(all.some((e) => e.from === 'stack' && e.to === 'tcp')).toBe(true);
    expect(all.some((e) => e.from === 'entry' && e.to === 'http')).toBe(true);
    expect(importsOf("import type { A } from '../a.js';\nexport * from './b.js';\nconst m = await import('./c.js');")).toEqual([
      '../a.js',
      './b.js',
      './c.js',
    ]);
  });

  it('every part of src/ is one of the floors', () => {
    const parts = new Set(sourceFiles(SRC).map(partOf));
    for (const p of parts) expect(Object.keys(MAY_IMPORT), `src/${p}/ is not in MAY_IMPORT`).toContain(p);
  });

  it('every import runs down the floors, never up or across', () => {
    const wrong = edges()
      .filter((e) => !MAY_IMPORT[e.from]!.includes(e.to))
      .map((e) => `${e.file}: ${e.from} → ${e.to} (${e.spec})`);
    expect(wrong).toEqual([]);
  });
});
