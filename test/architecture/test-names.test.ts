/**
 * One naming style for tests: behaviour first, in plain words, with the RFC section where one
 * applies ("acks a FIN received in ESTABLISHED after the delayed-ACK timeout"). Identifier-style
 * names (`parses_golden_v4_syn`, `fn_condition_result`) read as code, not as what was checked, and
 * a report of failures should read like a list of broken promises.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
/** A test title written as an identifier: two or more words joined by underscores, no spaces. */
const IDENTIFIER_TITLE = /^\s*(?:it|test)(?:\.\w+(?:\([^)]*\))?)*\(\s*(['"`])([A-Za-z0-9]+(?:_[A-Za-z0-9]+)+)(?:\s[^'"`]*)?\1/gm;
/** Constants and state names are words of their own: TIME_WAIT, ERR_CONFIG, SYNFIN_CONFIG. */
const ALL_CAPS = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;

function testFiles(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return testFiles(rel);
    return /\.(test|fuzz)\.ts$/.test(e.name) ? [rel] : [];
  });
}

export function identifierTitles(source: string): string[] {
  return [...source.matchAll(IDENTIFIER_TITLE)].map((m) => m[2]!).filter((t) => !ALL_CAPS.test(t));
}

describe('test titles say what behaviour is checked, in words', () => {
  it('no test in test/ is titled like an identifier (snake_case or fn_condition_result)', () => {
    const offenders = testFiles('test').flatMap((f) =>
      identifierTitles(fs.readFileSync(path.join(ROOT, f), 'utf8')).map((t) => `${f}: ${t}`),
    );
    expect(offenders).toEqual([]);
  });

  it('finds identifier titles where they are (the check can fail)', () => {
    const src = [
      "  it('parses_golden_v4_syn (RFC 791)', () => {});",
      "  it('labelValuesQuery_withSelector_returnsLabel', () => {});",
      "  it('TIME_WAIT after an app-first close', () => {});",
      "  it('acks a FIN after the delayed-ACK timeout (RFC 9293 §3.8.6.3)', () => {});",
      "  it.skipIf(true)('skipped_but_still_named_badly', () => {});",
    ].join('\n');
    expect(identifierTitles(src)).toEqual(['parses_golden_v4_syn', 'labelValuesQuery_withSelector_returnsLabel', 'skipped_but_still_named_badly']);
  });
});
