// Which synfin is measured: the working tree's dist/ (default), or --snapshot: the committed HEAD
// exported and compiled apart from the working tree, so edits in progress do not leak into figures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runSync, tryRunSync } from './proc.js';

export function describeSource(repo) {
  const commit = tryRunSync('git', ['-C', repo, 'rev-parse', 'HEAD']).trim() || 'unknown';
  const dirty = tryRunSync('git', ['-C', repo, 'status', '--porcelain', '--', 'src', 'native', 'binding.gyp']).trim().length > 0;
  return { commit, dirty };
}

/** Newest modification time (ms) of the files under `dir`. */
function newestMtime(dir) {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** dist/ of the working tree, built first when missing or older than a file of src/ (what is measured is what is checked out). */
export function workingTreeDist(repo) {
  const dist = path.join(repo, 'dist');
  const runtime = path.join(dist, 'runtime.js');
  if (!fs.existsSync(runtime) || fs.statSync(runtime).mtimeMs < newestMtime(path.join(repo, 'src'))) {
    runSync('sh', ['-c', 'cd "$0" && npm run --silent build', repo]);
  }
  const { commit, dirty } = describeSource(repo);
  return { dist, commit, dirty, source: 'working tree' };
}

/** Exports HEAD into a temporary directory and compiles it there; returns its dist/. */
export function snapshotDist(repo) {
  const commit = runSync('git', ['-C', repo, 'rev-parse', 'HEAD']).trim();
  const dir = path.join(os.tmpdir(), `synfin-bench-${commit.slice(0, 12)}`);
  const dist = path.join(dir, 'dist');
  if (!fs.existsSync(path.join(dist, 'runtime.js'))) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    runSync('sh', ['-c', `git -C "$0" archive HEAD | tar -x -C "$1"`, repo, dir]);
    fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
    // The addon: reuse the working tree's build when native/ is as committed, else build it.
    const nativeClean = tryRunSync('git', ['-C', repo, 'status', '--porcelain', '--', 'native', 'binding.gyp']).trim() === '';
    const built = path.join(repo, 'build', 'Release', 'synfin.node');
    if (nativeClean && fs.existsSync(built)) {
      fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
      fs.copyFileSync(built, path.join(dir, 'build', 'Release', 'synfin.node'));
    } else {
      runSync('sh', ['-c', 'cd "$0" && npx --no-install node-gyp rebuild >/dev/null', dir]);
    }
    runSync('sh', ['-c', 'cd "$0" && npx --no-install tsc -p tsconfig.build.json', dir]);
    fs.cpSync(path.join(dir, 'src', 'http', 'page'), path.join(dist, 'http', 'page'), { recursive: true });
  }
  return { dist, commit, dirty: false, source: `snapshot of HEAD in ${dir}` };
}
