/**
 * `synfin demo` as tests drive it: started with its API on a free loopback port, its URL and
 * namespace read from what it prints, stopped with Ctrl-C (SIGINT) as a user would. And `until`,
 * polling a probe for what a live system reaches eventually.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

/** Poll `probe` every 250 ms until it returns a value (errors count as not yet); fail after `timeoutMs` naming `what`. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface RunningDemo {
  child: ChildProcess;
  /** The API's base URL, e.g. http://127.0.0.1:40123 (no trailing slash). */
  base: string;
  /** host:port of the API, as a dashboard's $instance would be. */
  instance: string;
  /** The demo's network namespace. */
  ns: string;
  /** Ctrl-C, and the exit code once it has exited. */
  stop(): Promise<number | null>;
}

export async function startDemo(opts: { logLevel?: string } = {}): Promise<RunningDemo> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/synfin.js'), 'demo', '--listen', '127.0.0.1:0', '--log-level', opts.logLevel ?? 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    return exited;
  };
  try {
    return await until('the demo to print its URLs', 30_000, async () => {
      if (child.exitCode !== null) throw new Error(`the demo exited ${child.exitCode}: ${out.trim()}`);
      const m = /live page:\s+http:\/\/(\S+?)\/\s/.exec(out);
      const n = /namespace (synfin-demo-\d+)/.exec(out);
      if (m === null || n === null) return undefined;
      return { child, base: `http://${m[1]!}`, instance: m[1]!, ns: n[1]!, stop };
    });
  } catch (err) {
    await stop();
    throw err;
  }
}
