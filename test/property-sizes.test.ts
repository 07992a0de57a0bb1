/**
 * fast-check draws arrays, byte arrays and strings of about 10 elements at most (its default
 * size, "small": 2 × minLength + 10) unless `size` or an explicit length says otherwise,
 * whatever `maxLength` says. A property stating `maxLength: 3000` without `size` silently tests
 * short inputs only (the stack fuzzer sent no raw packet past 10 bytes; the deadline heap never
 * compacted; the checksum never left its byte loop). This guard reads every test and fuzz
 * source and fails on a collection arbitrary whose maxLength is past that default with neither
 * `size` nor minLength = maxLength.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';

const ROOT = path.join(import.meta.dirname, '..');
const COLLECTIONS = /\bfc\.(array|uniqueArray|sparseArray|uint8Array|uint8ClampedArray|int8Array|uint16Array|int16Array|uint32Array|int32Array|float32Array|float64Array|bigInt64Array|bigUint64Array|string|stringOf|base64String|subarray|shuffledSubarray|set)\(/g;
/** fast-check's default maximum for minLength 0 at size "small". */
const DEFAULT_MAX = 10;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (/\.(ts|mjs|js)$/.test(e.name)) out.push(p);
  }
  return out;
}

/** The text between the call's parentheses, with nested parenthesised text blanked out. */
function topLevelArgs(text: string, open: number): string {
  let depth = 0;
  let out = '';
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (c === '(') depth++;
    if (c === ')') {
      depth--;
      if (depth === 0) return out;
    }
    if (depth === 1 && i !== open) out += c;
  }
  return out;
}

export function unsizedCollections(file: string, text: string): { found: number; bad: string[] } {
  let found = 0;
  const bad: string[] = [];
  for (const m of text.matchAll(COLLECTIONS)) {
    found++;
    const args = topLevelArgs(text, m.index! + m[0].length - 1);
    const max = /\bmaxLength:\s*([^,}\s]+)/.exec(args)?.[1];
    if (max === undefined) continue; // the default maximum: small by intent
    const min = /\bminLength:\s*([^,}\s]+)/.exec(args)?.[1];
    if (/\bsize:/.test(args) || min === max) continue;
    const n = Number(max.replace(/_/g, ''));
    if (Number.isFinite(n) && n <= DEFAULT_MAX + 2 * Number(min?.replace(/_/g, '') ?? 0)) continue;
    const line = text.slice(0, m.index).split('\n').length;
    bad.push(`${path.relative(ROOT, file)}:${line}: ${m[0]}… maxLength ${max} without size`);
  }
  return { found, bad };
}

it('every collection arbitrary with a maxLength past the default states its size', () => {
  let found = 0;
  const bad: string[] = [];
  for (const file of [...sources(path.join(ROOT, 'test')), ...sources(path.join(ROOT, 'fuzz'))]) {
    if (file === import.meta.filename) continue;
    const r = unsizedCollections(file, fs.readFileSync(file, 'utf8'));
    found += r.found;
    bad.push(...r.bad);
  }
  expect(bad).toEqual([]);
  // The scan sees the properties (it cannot pass for want of looking).
  expect(found).toBeGreaterThan(30);
});

it('the guard catches an unsized maxLength, and accepts size or an explicit length', () => {
  const check = (src: string) => unsizedCollections('x.ts', src).bad.length;
  expect(check(`fc.uint8Array({ minLength: 0, maxLength: 3000 })`)).toBe(1);
  expect(check(`fc.array(fc.record({ a: fc.array(fc.nat(), { maxLength: 4 }) }), { maxLength: 600 })`)).toBe(1);
  expect(check(`fc.array(opArb, { minLength: 1, maxLength: RAW_MAX })`)).toBe(1);
  expect(check(`fc.uint8Array({ minLength: 0, maxLength: 3000, size: 'max' })`)).toBe(0);
  expect(check(`fc.array(op, { minLength: n, maxLength: n })`)).toBe(0);
  expect(check(`fc.array(op, { maxLength: 8 })`)).toBe(0);
  expect(check(`fc.array(op)`)).toBe(0);
});
