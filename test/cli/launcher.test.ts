import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/synfin.js');

/** The size of V8's young generation (new space, bytes) in a program started as `run` says, read by a preloaded probe. */
function newSpaceOf(run: (env: NodeJS.ProcessEnv) => void): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-launcher-'));
  try {
    const probe = path.join(dir, 'probe.cjs');
    const out = path.join(dir, 'new-space');
    fs.writeFileSync(
      probe,
      `const v8 = require('node:v8');\nrequire('node:fs').writeFileSync(${JSON.stringify(out)}, String(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size));\n`,
    );
    run({ ...process.env, NODE_OPTIONS: `--require ${probe}` });
    return Number(fs.readFileSync(out, 'utf8'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('the synfin launcher', () => {
  it('starts node with the young generation fixed at two semi-spaces of 8 MiB, as the image does', () => {
    // Executed directly, as npm's bin link is: the shebang's flags apply.
    const launched = newSpaceOf((env) => execFileSync(BIN, ['version'], { env, stdio: 'ignore' }));
    // The same probe in a plain node: node's own starting size, so the probe can tell the two apart.
    const plain = newSpaceOf((env) => execFileSync(process.execPath, ['-e', ''], { env, stdio: 'ignore' }));
    expect(launched).toBe(8 * 1024 * 1024);
    expect(plain).toBeLessThan(launched);
  });
});
