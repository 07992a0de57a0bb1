/**
 * Issue 21's rule for the state machine and the stack: a method reads on one screen. conn.ts is
 * the composition of the rule files and stack.ts demultiplexes; a method that grows past about
 * 60 lines is a rule that wants a file of its own (see ARCHITECTURE.md).
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/** conn.ts (the composition of the rules) and stack.ts (demultiplexing): the bound. */
const MAX_LINES = 60;
const STRICT_FILES = new Set(['src/tcp/conn.ts', 'src/stack/stack.ts']);
/** The rest of tcp/ and stack/: "about 60", with room for a receive or send path read in one piece. */
const MAX_LINES_ELSEWHERE = 70;
const ROOT = path.resolve(__dirname, '../..');
/** Unrolled on purpose: SipHash's rounds and one call's blocks, written out for speed. */
const EXEMPT = new Set(['src/tcp/siphash.ts:sipWords', 'src/tcp/siphash.ts:round']);

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(rel);
    return e.name.endsWith('.ts') ? [rel] : [];
  });
}

/** Every function-like body in a file with its line count, named `file:name`. */
export function functionLengths(rel: string): { name: string; lines: number }[] {
  const sf = ts.createSourceFile(rel, fs.readFileSync(path.join(ROOT, rel), 'utf8'), ts.ScriptTarget.Latest, true);
  const out: { name: string; lines: number }[] = [];
  const visit = (node: ts.Node): void => {
    const fnLike =
      ts.isMethodDeclaration(node) ||
      ts.isConstructorDeclaration(node) ||
      ts.isFunctionDeclaration(node) ||
      ts.isGetAccessorDeclaration(node) ||
      ts.isSetAccessorDeclaration(node) ||
      ((ts.isArrowFunction(node) || ts.isFunctionExpression(node)) && ts.isVariableDeclaration(node.parent));
    if (fnLike && (node as ts.FunctionLikeDeclaration).body !== undefined) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const named = (node as ts.FunctionLikeDeclaration).name ?? (ts.isVariableDeclaration(node.parent) ? node.parent.name : undefined);
      out.push({ name: `${rel}:${named?.getText(sf) ?? 'constructor'}`, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

describe('methods of the state machine and the stack read on one screen', () => {
  const files = [...sourceFiles('src/tcp'), ...sourceFiles('src/stack')];

  it('finds the methods it measures (conn.ts and stack.ts among them)', () => {
    const names = files.flatMap(functionLengths).map((f) => f.name);
    expect(names).toContain('src/tcp/conn.ts:process');
    expect(names).toContain('src/stack/stack.ts:input');
    expect(names.length).toBeGreaterThan(200);
  });

  it(`no method of conn.ts or stack.ts is over ${MAX_LINES} lines, none elsewhere in src/tcp or src/stack over ${MAX_LINES_ELSEWHERE}`, () => {
    const long = files
      .flatMap(functionLengths)
      .filter((f) => f.lines > (STRICT_FILES.has(f.name.split(':')[0]!) ? MAX_LINES : MAX_LINES_ELSEWHERE) && !EXEMPT.has(f.name))
      .map((f) => `${f.name} (${f.lines} lines)`);
    expect(long).toEqual([]);
  });

  it('counts a long method as long (the measure itself can fail)', () => {
    const tmp = path.join('test', 'architecture', `.long-${process.pid}.ts`);
    fs.writeFileSync(path.join(ROOT, tmp), `class A {\n  m(): void {\n${'    void 0;\n'.repeat(70)}  }\n}\n`);
    try {
      expect(functionLengths(tmp)).toEqual([{ name: `${tmp}:m`, lines: 72 }]);
    } finally {
      fs.rmSync(path.join(ROOT, tmp));
    }
  });
});
