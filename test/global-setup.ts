/**
 * Runs once before any test file: `npm run build`, so every test that starts synfin from dist/
 * (the CLI, the sidecar, the workers) finds it built from this tree. Once, not in each file's
 * beforeAll: two files building at the same time rewrite dist/ under a synfin another file has
 * just started, which then imports a half-written module.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export default function buildOnce(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
}
