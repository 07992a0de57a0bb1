// JavaScript-only A/B of synfin builds in one process (bench/request-floor-js.mjs,
// bench/connection-floor-js.mjs): each build's compiled dist/ loaded side by side, each driving its
// own in-memory world, the builds taking turns round after round so that a loaded machine slows
// them alike. What differs between the scripts is the world; the turns and the CPU count are here.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** A module of a compiled synfin (`dist` a dist/ directory, `file` relative to it). */
export function importFromDist(dist, file) {
  return import(pathToFileURL(path.join(path.resolve(dist), file)).href);
}

/**
 * `spec` is NAME=DIST,NAME=DIST...; `worldOf(dist)` makes one build's world, whose `run(units)`
 * does the work and returns how many units it did, and whose `link.commits` counts the packets it
 * sent. `warm(world)` runs once first (every build's code optimized before the first measured
 * round); `afterTurn(variant)` after each measured turn. Returns the variants with their samples
 * (process CPU µs per unit, one per round) and the packets per unit of their last turn.
 */
export async function buildsInTurn(spec, { rounds, units, worldOf, warm, afterTurn }) {
  const variants = [];
  for (const v of spec.split(',')) {
    const [name, dist] = v.split('=');
    variants.push({ name, world: await worldOf(dist, name), samples: [], packets: 0 });
  }
  for (const v of variants) warm(v.world);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < variants.length; i++) {
      const v = variants[(i + r) % variants.length];
      const before = process.cpuUsage();
      const commits = v.world.link.commits;
      const n = v.world.run(units);
      const used = process.cpuUsage(before);
      v.samples.push((used.user + used.system) / n);
      v.packets = (v.world.link.commits - commits) / n;
      afterTurn?.(v);
    }
  }
  return variants;
}
