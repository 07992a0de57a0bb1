/**
 * The signals that stop `synfin run` (src/stop-signals.ts): the first SIGTERM starts the graceful
 * shutdown, a second ends its grace period at once (open connections reset, exit 0), a third
 * exits at once. The handler alone with a stand-in target, then a real `synfin run` in a network
 * namespace holding a connection through a 60 s grace period.
 */
import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { installStopSignals } from '../../src/stop-signals.js';
import { killAll, printedPort, stdoutOf, untilTrue } from '../helpers/children.js';
import { NetNs, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';

const BIN = path.join(import.meta.dirname, '../../bin/synfin.js');

describe('installStopSignals', () => {
  let uninstall: (() => void) | null = null;
  afterEach(() => uninstall?.());

  it('shuts down on the first signal, ends the grace period on the second, exits at once on the third', async () => {
    const calls: string[] = [];
    const exits: number[] = [];
    let finish: () => void = () => {};
    const target = {
      shutdown: (reason: string) => {
        calls.push(`shutdown ${reason}`);
        return new Promise<void>((r) => (finish = r));
      },
      endGrace: (reason: string) => void calls.push(`endGrace ${reason}`),
    };
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    uninstall = installStopSignals(target, logger, (code) => void exits.push(code));
    process.emit('SIGTERM', 'SIGTERM');
    expect(calls).toEqual(['shutdown SIGTERM']);
    expect(exits).toEqual([]);
    process.emit('SIGINT', 'SIGINT');
    expect(calls).toEqual(['shutdown SIGTERM', 'endGrace SIGINT']);
    expect(lines.some((l) => l.includes('SIGINT again: the grace period ends now'))).toBe(true);
    expect(exits).toEqual([]);
    process.emit('SIGTERM', 'SIGTERM');
    expect(exits).toEqual([128 + os.constants.signals.SIGTERM]);
    // The shutdown the first signal started still ends with exit 0 when it finishes.
    finish();
    await new Promise((r) => setImmediate(r));
    expect(exits).toEqual([128 + os.constants.signals.SIGTERM, 0]);
  });
});

const SERVER = `
const net = require('node:net');
const srv = net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('error', () => {}); });
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
`;
/** One connection through synfin that stays open; prints 'ready', then how it ended. */
const CLIENT = `
const net = require('node:net');
const s = net.connect({ host: process.argv[1], port: Number(process.argv[2]) }, () => s.write('hello'));
s.once('data', () => console.log('ready'));
s.on('error', (e) => console.log('error ' + e.code));
s.on('close', () => console.log('closed'));
setInterval(() => {}, 1e9);
`;

describeIfTun('synfin run and a second SIGTERM', () => {
  let ns: NetNs | null = null;
  const children: ChildProcess[] = [];
  afterAll(async () => {
    await killAll(children);
    ns?.destroy();
  });
  const output = stdoutOf;
  const until = untilTrue;

  it.each([
    ['one thread', []],
    ['--workers 2', ['--workers', '2']],
  ])('%s: holds an open connection through the grace period after the first, resets it and exits 0 at the second', async (_name, extra: string[]) => {
    ns?.destroy();
    ns = NetNs.create('stopsig');
    const server = ns.spawn(process.execPath, ['-e', SERVER]);
    children.push(server);
    const port = await printedPort(server);
    const n = (process.pid % 200) + 20;
    const synfin = ns.spawn(process.execPath, [
      BIN, 'run', '--tun', uniqueIfName('sfst'), '--address', `198.18.${n}.1/24`, '--listen', '127.0.0.1:9477',
      '--map', `198.18.${n}.0/24=127.0.0.1`, '--shutdown-grace', '60', ...extra,
    ]);
    children.push(synfin);
    const synfinOut = output(synfin);
    // The supervisor's own line (with --workers each worker logs one too, before the supervisor
    // has its signal handlers): a line without a `worker` field.
    const ready = () =>
      synfinOut()
        .split('\n')
        .some((l) => l.includes('"synfin ready"') && !l.includes('"worker":'));
    await until('synfin ready', ready);
    const client = ns.spawn(process.execPath, ['-e', CLIENT, `198.18.${n}.2`, String(port)]);
    children.push(client);
    const clientOut = output(client);
    await until('the connection through synfin', () => clientOut().includes('ready'));
    const exited = new Promise<number | null>((r) => synfin.once('exit', r));

    synfin.kill('SIGTERM');
    await until('the shutdown', () => synfinOut().includes('shutting down'));
    // Well inside the 60 s grace period: synfin waits for the open connection, which stays open.
    await new Promise((r) => setTimeout(r, 1500));
    expect(synfin.exitCode).toBeNull();
    expect(clientOut()).not.toMatch(/error|closed/);

    const second = Date.now();
    synfin.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - second).toBeLessThan(10_000);
    const lines = synfinOut().trim().split('\n').map((l) => JSON.parse(l) as { msg: string; open?: number; cutShort?: boolean });
    expect(lines.some((l) => l.msg.startsWith('SIGTERM again: the grace period ends now'))).toBe(true);
    // The worker (or the one thread) holding the connection cut its grace period short.
    expect(lines.filter((l) => l.msg.startsWith('grace period over'))).toEqual([expect.objectContaining({ open: 1, cutShort: true })]);
    expect(lines.at(-1)!.msg).toBe('synfin stopped');
    // The app's connection was reset, not left open or closed cleanly.
    await until("the app's reset", () => clientOut().includes('error ECONNRESET'), 5000);
  }, 60_000);
});
