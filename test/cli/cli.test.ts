/**
 * The command line as a user meets it: `synfin` from bin/, built by `npm run build`.
 * Bad input ends in one line on stderr and exit code 2, never a stack trace.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NetNs } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/synfin.js');

function synfin(args: string[], env: NodeJS.ProcessEnv = {}, asUser?: string) {
  const argv = asUser !== undefined ? ['setpriv', `--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups', process.execPath, BIN, ...args] : [process.execPath, BIN, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.code).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^synfin: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/); // no stack trace
}

describe('synfin CLI', () => {
  it('--help lists every contract option', () => {
    const r = synfin(['run', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--tun', '--address', '--mtu', '--route', '--listen', '--msl', '--connect-timeout', '--idle-timeout', '--max-connections', '--upstream-bind', '--log-level', '--config', '--map', '--allow', '--deny']) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toContain('SYNFIN_');
  });

  it('top-level help names the commands', () => {
    const r = synfin(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/run \[options\]/);
    expect(r.stdout).toMatch(/demo/);
  });

  it('an unknown flag is one line and exit 2', () => {
    expectOneLineError(synfin(['run', '--frobnicate']), /unknown option '--frobnicate'/);
  });

  it('a bad CIDR is one line and exit 2', () => {
    expectOneLineError(synfin(['run', '--address', '10.0.0.1/99']), /--address: "10.0.0.1\/99" has a bad prefix length/);
    expectOneLineError(synfin(['run', '--deny', 'banana']), /--deny: "banana" is not an IP address/);
  });

  it('a bad environment variable is one line and exit 2', () => {
    expectOneLineError(synfin(['run'], { SYNFIN_MSL: 'forever' }), /SYNFIN_MSL: "forever" is not a number/);
  });

  it('--api-addresses takes loopback, all or none; anything else is one line and exit 2', () => {
    expect(synfin(['run', '--help']).stdout).toMatch(/--api-addresses <MODE>/);
    expectOneLineError(synfin(['run', '--api-addresses', 'public']), /--api-addresses: "public" is not one of loopback, all, none/);
    expectOneLineError(synfin(['run'], { SYNFIN_API_ADDRESSES: 'yes' }), /--api-addresses: "yes" is not one of loopback, all, none/);
  });

  it('a missing value is one line and exit 2', () => {
    expectOneLineError(synfin(['run', '--tun']), /argument missing/);
  });
});

describeIfTun('synfin CLI with devices', () => {
  it('a missing device permission is one line and exit 2', () => {
    // uid/gid 65534: nobody/nogroup on Debian.
    const r = synfin(['run', '--tun', `sfperm${process.pid % 10000}`, '--listen', '127.0.0.1:0'], {}, '65534');
    expectOneLineError(r, /permission|CAP_NET_ADMIN|root/i);
  });

  it('a port already in use is one line and exit 2', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const name = `sfcli${process.pid % 10000}`;
      expectOneLineError(synfin(['run', '--tun', name, '--listen', `127.0.0.1:${port}`]), new RegExp(`--listen: 127.0.0.1:${port} is already in use`));
      // The device synfin created for itself is gone with it.
      expect(spawnSync('ip', ['link', 'show', name]).status).not.toBe(0);
    } finally {
      blocker.close();
    }
  });

  it('without --listen, the HTTP server listens on 127.0.0.1:9477 only', async () => {
    // In a namespace of its own: port 9477 is free there whatever else runs on this host.
    const ns = NetNs.create('cli');
    const name = `sfdef${process.pid % 10000}`;
    const child = ns.spawn(process.execPath, [BIN, 'run', '--tun', name, '--shutdown-grace', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      const deadline = Date.now() + 15_000;
      while (!out.includes('synfin ready')) {
        if (Date.now() > deadline) throw new Error(`never ready: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(JSON.parse(out.split('\n').find((l) => l.includes('synfin ready'))!).listen).toBe('http://127.0.0.1:9477');
      const listening = ns.execSync('ss', ['-Hltn']).trim().split('\n').map((l) => l.trim().split(/\s+/)[3]);
      expect(listening).toEqual(['127.0.0.1:9477']);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      ns.destroy();
    }
  });

  it('SIGTERM stops accepting and exits 0', async () => {
    const name = `sfsig${process.pid % 10000}`;
    const child = spawn(process.execPath, [BIN, 'run', '--tun', name, '--listen', '127.0.0.1:0', '--shutdown-grace', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const deadline = Date.now() + 15_000;
    while (!out.includes('synfin ready')) {
      if (Date.now() > deadline) throw new Error(`never ready: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const ready = JSON.parse(out.split('\n').find((l) => l.includes('synfin ready'))!);
    expect(ready.tun).toBe(name);
    expect((await fetch(`${ready.listen}/readyz`)).status).toBe(200);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).toBe(0);
    expect(out).toMatch(/synfin stopped/);
  });
});

/** In the namespace: an echo server on 127.0.0.1 that never closes first. Prints its port. */
const ECHO_SERVER = `
const net = require('node:net');
const srv = net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('error', () => {}); });
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
`;

/**
 * In the namespace: one connection through synfin, a byte every 100 ms, each echo counted. Prints
 * 'open', then 'echo N T' per echo and how the connection ended: 'error CODE T' or 'end T'
 * (T: ms since start).
 */
const PINGER = `
const net = require('node:net');
const t0 = Date.now();
const s = net.connect({ host: process.argv[1], port: Number(process.argv[2]) });
let n = 0;
s.on('connect', () => { console.log('open'); setInterval(() => s.write('x'), 100).unref(); });
s.on('data', (d) => { n += d.length; console.log('echo ' + n + ' ' + (Date.now() - t0)); });
s.on('error', (e) => { console.log('error ' + e.code + ' ' + (Date.now() - t0)); process.exit(0); });
s.on('end', () => { console.log('end ' + (Date.now() - t0)); process.exit(0); });
`;

describeIfTun('--shutdown-grace', () => {
  it('on SIGTERM open connections get the grace, then RST; /readyz is 503 meanwhile; exit 0', async () => {
    const GRACE = 3;
    const ns = NetNs.create('grace');
    const children: ChildProcess[] = [];
    try {
      const lines = (child: ChildProcess): { text: () => string } => {
        let out = '';
        child.stdout!.on('data', (d) => (out += d));
        return { text: () => out };
      };
      const until = async (what: string, ok: () => boolean, ms = 15_000): Promise<void> => {
        const deadline = Date.now() + ms;
        while (!ok()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      const server = ns.spawn(process.execPath, ['-e', ECHO_SERVER]);
      children.push(server);
      const serverOut = lines(server);
      await until('the echo server', () => serverOut.text().includes('\n'));
      const port = Number(serverOut.text().trim());

      const n = (process.pid % 200) + 20;
      const synfinChild = ns.spawn(process.execPath, [
        BIN, 'run', '--tun', `sfgr${process.pid % 10000}`, '--address', `198.18.${n}.1/24`, '--listen', '127.0.0.1:9477',
        '--map', `198.18.${n}.0/24=127.0.0.1`, '--shutdown-grace', String(GRACE),
      ]);
      children.push(synfinChild);
      const synfinOut = lines(synfinChild);
      let stderr = '';
      synfinChild.stderr!.on('data', (d) => (stderr += d));
      await until('synfin ready', () => synfinOut.text().includes('synfin ready'));
      const readyz = async (): Promise<string> => (await ns.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', 'http://127.0.0.1:9477/readyz'])).stdout;
      expect(await readyz()).toBe('200');

      const pinger = ns.spawn(process.execPath, ['-e', PINGER, `198.18.${n}.2`, String(port)]);
      children.push(pinger);
      const pingOut = lines(pinger);
      await until('echoes through synfin', () => /echo 3 /.test(pingOut.text()));

      const exited = new Promise<number | null>((r) => synfinChild.once('exit', r));
      const termAt = Date.now();
      synfinChild.kill('SIGTERM');
      // Within the grace: not ready, and the open connection still carries bytes.
      await new Promise((r) => setTimeout(r, 300));
      expect(await readyz()).toBe('503');
      const echoesAtTerm = Number(/echo (\d+) /.exec(pingOut.text().split('\n').filter((l) => l.startsWith('echo')).at(-1)!)![1]);
      await new Promise((r) => setTimeout(r, 1000));
      expect(await readyz()).toBe('503');
      const echoesLater = Number(/echo (\d+) /.exec(pingOut.text().split('\n').filter((l) => l.startsWith('echo')).at(-1)!)![1]);
      expect(echoesLater).toBeGreaterThan(echoesAtTerm + 3);

      // The grace over: the connection is reset (not closed with a FIN), then synfin exits 0.
      await until('the connection to end', () => /^(error|end) /m.test(pingOut.text()), (GRACE + 10) * 1000);
      const endedAfter = Date.now() - termAt;
      expect(pingOut.text()).toMatch(/^error ECONNRESET /m);
      expect(endedAfter).toBeGreaterThanOrEqual(GRACE * 1000 - 200);
      expect(endedAfter).toBeLessThan(GRACE * 1000 + 3000);
      expect(await exited).toBe(0);
      expect(synfinOut.text()).toMatch(/grace period over: resetting the remaining connections/);
      expect(synfinOut.text()).toMatch(/synfin stopped/);
      expect(stderr).toBe('');
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      ns.destroy();
    }
  }, 60_000);
});
