/**
 * The addon's lifetime rules, each checked in a child process that loads the addon directly:
 * a device nobody references is closed by GC, a worker's devices are closed when the worker goes
 * away, and callbacks behave like any other event loop callback (exceptions become uncaught
 * exceptions, process.exit() inside one is safe).
 */
import { execFile } from 'node:child_process';
import { afterEach, expect, it } from 'vitest';
import { ADDON_PATH } from '../../src/tun/index.js';
import { destroyAllNetns, leftovers, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';

/** Runs `node [nodeArgs] -e script` with ADDON and NAME set; resolves with its last stdout line as JSON. */
function runScript(nodeArgs: string[], script: string, name: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...nodeArgs, '-e', script],
      { env: { ...process.env, ADDON: ADDON_PATH, NAME: name } },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`child failed: ${String(err)} ${stderr}`));
        else resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as unknown);
      },
    );
  });
}

// Opens a device, drops every reference to it, and collects garbage until it disappears (20 rounds at most).
const GC_SCRIPT = `
const fs = require('fs');
const addon = require(process.env.ADDON);
const path = '/sys/class/net/' + process.env.NAME;
(() => { addon.open(process.env.NAME, { vnetHdr: true }); })();
const existed = fs.existsSync(path);
(async () => {
  for (let i = 0; i < 20 && fs.existsSync(path); i++) { global.gc(); await new Promise((r) => setImmediate(r)); }
  console.log(JSON.stringify({ existed, gone: !fs.existsSync(path) }));
})();
`;

// A worker opens a device and starts reading (an active handle), then is terminated.
const WORKER_TERMINATE_SCRIPT = `
const fs = require('fs');
const { Worker } = require('worker_threads');
const path = '/sys/class/net/' + process.env.NAME;
const w = new Worker(\`
  const addon = require(process.env.ADDON);
  const d = addon.open(process.env.NAME, { vnetHdr: true });
  d.startReading(Buffer.alloc(70000), new Int32Array(1), 70000, 1, () => {}, () => {});
  require('worker_threads').parentPort.postMessage('open');
\`, { eval: true });
let existed = false;
w.on('message', () => { existed = fs.existsSync(path); w.terminate(); });
w.on('exit', () => console.log(JSON.stringify({ existed, gone: !fs.existsSync(path) })));
`;

// A worker closes one device (its poll handle still closing) and calls process.exit() from the
// writable callback of another: the worker must end cleanly, with both devices gone.
const WORKER_EXIT_SCRIPT = `
const fs = require('fs');
const { Worker } = require('worker_threads');
const name2 = process.env.NAME.slice(0, 14) + 'b';
const w = new Worker(\`
  const addon = require(process.env.ADDON);
  const d = addon.open(process.env.NAME, { vnetHdr: true });
  d.startReading(Buffer.alloc(70000), new Int32Array(1), 70000, 1, () => {}, () => {});
  d.close();
  const d2 = addon.open(\${JSON.stringify(name2)}, { vnetHdr: true });
  require('child_process').execFileSync('ip', ['link', 'set', 'dev', d2.name, 'up']); // a down TUN is never writable
  d2.onWritable(() => process.exit(7));
\`, { eval: true });
w.on('exit', (code) => console.log(JSON.stringify({
  code, gone: !fs.existsSync('/sys/class/net/' + process.env.NAME) && !fs.existsSync('/sys/class/net/' + name2) })));
`;

// A callback that throws: the error reaches process 'uncaughtException', and nextTick jobs queued
// by the callback still run.
const THROW_SCRIPT = `
const addon = require(process.env.ADDON);
const d = addon.open(process.env.NAME, { vnetHdr: true });
require('child_process').execFileSync('ip', ['link', 'set', 'dev', d.name, 'up']);
const seen = [];
process.on('uncaughtException', (e) => { seen.push(e.message); d.close(); });
d.onWritable(() => { process.nextTick(() => { seen.push('tick'); console.log(JSON.stringify(seen)); }); throw new Error('boom'); });
`;

afterEach(() => {
  destroyAllNetns();
});

describeIfTun('TUN addon lifetime', () => {
  it('device dropped without close is closed by the garbage collector', async () => {
    expect(await runScript(['--expose-gc'], GC_SCRIPT, uniqueIfName('sfg'))).toEqual({ existed: true, gone: true });
  });

  it('reading device in a terminated worker is closed at environment teardown', async () => {
    expect(await runScript([], WORKER_TERMINATE_SCRIPT, uniqueIfName('sfw'))).toEqual({ existed: true, gone: true });
  });

  it('process exit inside a worker callback ends the worker cleanly', async () => {
    expect(await runScript([], WORKER_EXIT_SCRIPT, uniqueIfName('sfx'))).toEqual({ code: 7, gone: true });
  });

  it('exception thrown by a callback becomes an uncaught exception', async () => {
    expect(await runScript([], THROW_SCRIPT, uniqueIfName('sfe'))).toEqual(['boom', 'tick']);
  });

  it('children leave no device behind', () => {
    expect(leftovers()).toEqual([]);
  });
});
