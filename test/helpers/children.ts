/**
 * Child processes of the CLI tests (synfin, its peers) as the tests watch them: what one printed
 * so far, waiting for a condition on it, and killing what is left at the end.
 */
import type { ChildProcess } from 'node:child_process';

/** Everything `child` wrote to stdout so far, read through the returned function. */
export function stdoutOf(child: ChildProcess): () => string {
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  return () => out;
}

/** Resolves once `ok()` is true, checking every 25 ms; throws after `ms`. */
export async function untilTrue(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The port a peer prints as its first line once it listens (the tests' small servers do). */
export async function printedPort(child: ChildProcess, what = 'the server'): Promise<number> {
  const out = stdoutOf(child);
  await untilTrue(what, () => out().includes('\n'));
  return Number(out().trim());
}

/** SIGKILL every child still running and wait for them to exit. */
export async function killAll(children: readonly ChildProcess[]): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null)));
}
