/**
 * --hystart on|off: HyStart++ (RFC 9406) is on by default; off from the flag, SYNFIN_HYSTART or
 * the config file; a bad value is one line and exit 2.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';

const BIN = path.join(import.meta.dirname, '../../bin/synfin.js');

function tmpFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-hystart-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('--hystart', () => {
  it('on by default; off from the flag, SYNFIN_HYSTART or the file, in the words booleans take', () => {
    expect(resolveConfig({}, {}).hystart).toBe(true);
    expect(resolveConfig({ hystart: 'off' }, {}).hystart).toBe(false);
    expect(resolveConfig({ hystart: 'on' }, { SYNFIN_HYSTART: 'off' }).hystart).toBe(true);
    expect(resolveConfig({}, { SYNFIN_HYSTART: 'false' }).hystart).toBe(false);
    expect(resolveConfig({}, { SYNFIN_HYSTART: '0' }).hystart).toBe(false);
    expect(resolveConfig({}, {}, tmpFile('a.yaml', 'hystart: false\n')).hystart).toBe(false);
    expect(resolveConfig({}, {}, tmpFile('b.yaml', 'hystart: off\n')).hystart).toBe(false);
    expect(() => resolveConfig({ hystart: 'sometimes' }, {})).toThrow(/--hystart: "sometimes" is not on or off/);
  });

  it('the CLI takes --hystart with a value and lists it in --help; a bad value is one line and exit 2', () => {
    // Needs dist/ (npm run build), as the other CLI tests.
    const help = spawnSync(process.execPath, [BIN, 'run', '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(help.stdout).toMatch(/--hystart <on\|off>/);
    const ok = spawnSync(process.execPath, [BIN, 'check', '--hystart', 'off', '--tun', 'sfh0'], { encoding: 'utf8', timeout: 20_000 });
    expect(ok.status, ok.stderr).toBe(0);
    const bad = spawnSync(process.execPath, [BIN, 'check', '--hystart', 'maybe', '--tun', 'sfh0'], { encoding: 'utf8', timeout: 20_000 });
    expect(bad.status).toBe(2);
    const lines = bad.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^synfin: --hystart: "maybe" is not on or off/);
  });
});
