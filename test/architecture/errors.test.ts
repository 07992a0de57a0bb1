/**
 * One error catalogue (src/errors.ts): every error class synfin throws is a SynfinError with a
 * stable code, and none is declared elsewhere (a class extending Error or RangeError outside the
 * catalogue would escape the codes that scripts and tests match on).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as errors from '../../src/errors.js';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return d.name === 'page' ? [] : sourceFiles(p);
    return d.name.endsWith('.ts') ? [p] : [];
  });
}

describe('the error catalogue', () => {
  it('declares every error class of src/ (none extends Error elsewhere)', () => {
    const outside = sourceFiles(SRC)
      .filter((f) => path.basename(f) !== 'errors.ts')
      .flatMap((f) =>
        [...fs.readFileSync(f, 'utf8').matchAll(/class\s+(\w+)\s+extends\s+(\w*Error)\b/g)].map((m) => `${path.relative(SRC, f)}: ${m[1]} extends ${m[2]}`),
      );
    expect(outside).toEqual([]);
  });

  it('makes every class a SynfinError with an ERR_ code of its own', () => {
    const text = fs.readFileSync(path.join(SRC, 'errors.ts'), 'utf8');
    const classes = Object.entries(errors).filter(([, v]) => typeof v === 'function') as [string, abstract new (...a: never[]) => unknown][];
    expect(classes.length).toBeGreaterThan(10);
    const seen = new Map<string, string>();
    for (const [name, Ctor] of classes) {
      if (name === 'SynfinError') continue;
      expect(Ctor.prototype, name).toBeInstanceOf(errors.SynfinError);
      // Its code: a literal in its own constructor, or (for a family) codes named in its code type.
      const body = text.slice(text.indexOf(`class ${name} `));
      const own = body.slice(0, body.indexOf('\n}\n'));
      const codes = [...own.matchAll(/'(ERR_[A-Z0-9_]+)'/g)].map((m) => m[1]!);
      const family = /constructor\(code: /.test(own);
      expect(codes.length > 0 || family, `${name} has no ERR_ code`).toBe(true);
      for (const c of codes) {
        expect(seen.get(c) ?? name, `${c} is used by ${seen.get(c)} and ${name}`).toBe(name);
        seen.set(c, name);
      }
    }
  });
});
