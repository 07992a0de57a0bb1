/** --capture-buffer and --capture-snaplen: sizes from a flag, SYNFIN_* or the config file; 0 = off. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-capture-config-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('capture options', () => {
  it('are off by default with a 128-byte snaplen', () => {
    const c = resolveConfig({}, {});
    expect(c.captureBuffer).toBe(0);
    expect(c.captureSnaplen).toBe(128);
  });

  it('take sizes with units from a flag, the environment or the file', () => {
    expect(resolveConfig({ 'capture-buffer': '64MiB' }, {}).captureBuffer).toBe(64 * 1024 * 1024);
    expect(resolveConfig({}, { SYNFIN_CAPTURE_BUFFER: '1048576', SYNFIN_CAPTURE_SNAPLEN: '0' })).toMatchObject({ captureBuffer: 1 << 20, captureSnaplen: 0 });
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, 'capture-buffer: 16MiB\ncaptureSnaplen: 256\n');
    expect(resolveConfig({}, {}, file)).toMatchObject({ captureBuffer: 16 * 1024 * 1024, captureSnaplen: 256 });
  });

  it('refuse sizes out of range', () => {
    expect(() => resolveConfig({ 'capture-buffer': 'lots' }, {})).toThrow(/--capture-buffer: "lots" is not a size/);
    expect(() => resolveConfig({ 'capture-buffer': '1000' }, {})).toThrow(/--capture-buffer: 1000 is out of range/);
    expect(() => resolveConfig({ 'capture-buffer': '2GiB' }, {})).toThrow(/--capture-buffer: .* is out of range/);
    expect(() => resolveConfig({ 'capture-snaplen': '70000' }, {})).toThrow(/--capture-snaplen: 70000 is out of range/);
  });
});
