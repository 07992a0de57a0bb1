// Running programs for the benchmark: one-shot commands (optionally inside a network namespace),
// long-running daemons with a readiness line, and a registry that stops every daemon this process
// started (by its pid) when the benchmark ends, fails or is interrupted.
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';

/** argv prefix that runs a program inside namespace `ns` (none = the current one). */
export function inNs(ns, file, args) {
  return ns === undefined ? [file, args] : ['ip', ['netns', 'exec', ns, file, ...args]];
}

/** Runs to completion; resolves { code, stdout, stderr, ms } and never rejects on a non-zero exit. */
export function run(file, args, { ns, input, timeoutMs = 120_000, env } = {}) {
  const [f, a] = inNs(ns, file, args);
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = execFile(f, a, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: timeoutMs, killSignal: 'SIGKILL', env: env ?? process.env }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code === 'string') {
        reject(new Error(`${file}: ${err.message}`));
        return;
      }
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      resolve({ code: err === null ? 0 : (err.code ?? null), signal: err?.signal ?? null, stdout, stderr, ms });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Runs synchronously and returns stdout; throws with stderr on failure. */
export function runSync(file, args, { ns, input } = {}) {
  const [f, a] = inNs(ns, file, args);
  try {
    return execFileSync(f, a, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`${[file, ...args].join(' ')}${ns ? ` (in ${ns})` : ''}: ${String(err.stderr ?? err.message).trim()}`, { cause: err });
  }
}

/** Like runSync, but failures are ignored (clean-up paths). */
export function tryRunSync(file, args, opts) {
  try {
    return runSync(file, args, opts);
  } catch {
    return '';
  }
}

const live = new Set();

/**
 * A long-running program. `ready` resolves with the first stdout line matching `readyLine`
 * (or immediately when none is given); it rejects if the program exits first or `readyMs` passes.
 * `stop(signal)` signals it by pid and resolves { code, signal, stdout, stderr } once it exited.
 */
export class Daemon {
  constructor(name, file, args, { ns, readyLine, readyMs = 20_000, env, stdin = 'ignore' } = {}) {
    const [f, a] = inNs(ns, file, args);
    this.name = name;
    this.child = spawn(f, a, { stdio: [stdin, 'pipe', 'pipe'], env: env ?? process.env });
    // `ip netns exec` and `sh -c 'exec ...'` replace themselves: this is the program's own pid.
    this.pid = this.child.pid;
    this.stdout = '';
    this.stderr = '';
    this.exited = false;
    this.exit = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true;
        live.delete(this);
        resolve({ code, signal });
      });
    });
    live.add(this);
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d) => {
      this.stderr += d;
      if (this.stderr.length > 1 << 20) this.stderr = this.stderr.slice(-(1 << 19));
    });
    this.ready = new Promise((resolve, reject) => {
      if (readyLine === undefined) {
        // Nothing to wait for, and no readiness timer: it would stop the program readyMs later.
        resolve('');
        return;
      }
      const timer = setTimeout(() => {
        reject(new Error(`${name} not ready after ${readyMs} ms; stderr: ${this.stderr.trim().slice(-2000)}`));
        // Not left behind: a program that never became ready is of no further use.
        void this.stop('SIGKILL');
      }, readyMs);
      this.child.stdout.on('data', (d) => {
        this.stdout += d;
        if (readyLine === undefined) return;
        for (const line of this.stdout.split('\n')) {
          if (readyLine.test(line)) {
            clearTimeout(timer);
            resolve(line);
            return;
          }
        }
      });
      this.exit.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before it was ready; stderr: ${this.stderr.trim().slice(-2000)}`));
      });
    });
    this.ready.catch(() => {});
  }

  /** Lines written to stdout so far. */
  lines() {
    return this.stdout.split('\n').filter((l) => l.length > 0);
  }

  /** Signals the program and waits for it to exit (SIGKILL after `graceMs`). */
  async stop(signal = 'SIGTERM', graceMs = 15_000) {
    if (!this.exited) {
      try {
        process.kill(this.pid, signal);
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, graceMs);
      await this.exit;
      clearTimeout(timer);
    }
    const { code, signal: sig } = await this.exit;
    return { code, signal: sig, stdout: this.stdout, stderr: this.stderr };
  }
}

/** SIGKILLs every daemon still running (synchronous: safe in an 'exit' handler). */
export function killAllDaemons() {
  for (const d of live) {
    try {
      process.kill(d.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** utime and stime (fields 14 and 15 of a /proc stat line, after the command name), ms. */
function statCpuMs(file) {
  const stat = fs.readFileSync(file, 'utf8');
  // Fields after the command name (which may hold spaces) start after its closing parenthesis.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // In clock ticks (USER_HZ, 100 on Linux).
  return { user: (Number(f[11]) * 1000) / 100, system: (Number(f[12]) * 1000) / 100 };
}

/** CPU time process `pid` has used so far (all its threads, user + system), ms; `mainThread`: its first thread only. */
export function procCpuMs(pid, mainThread = false) {
  const t = statCpuMs(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`);
  return t.user + t.system;
}

/** CPU time process `pid` has used so far (all its threads), ms, as { user, system }. */
export function procCpuSplitMs(pid) {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** Resident set size of process `pid` now, KiB (VmRSS). */
export function procRssKb(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m === null ? NaN : Number(m[1]);
}
