/**
 * A real TUN device in a fresh network namespace with synfin's stack behind it, in this process:
 * the kernel in the namespace is the client, and a test forwarder stands in for the proxy.
 *
 *   const env = await startStackEnv({ handler: 'echo' });
 *   await env.ns.exec(process.execPath, ['-e', clientScript(env.serverAddr, 7)]);
 *   env.close();
 *
 * Addresses: the namespace's side of the device is 198.18.N.1/24, and every other address in
 * that /24 (e.g. env.serverAddr = 198.18.N.2) is answered by the stack.
 */
import crypto from 'node:crypto';
import { Stack, type Forwarder, type PendingSyn } from '../../src/stack/stack.js';
import { EventHub } from '../../src/stack/events.js';
import { monotonicClock } from '../../src/stack/clock.js';
import { ImpairedRx, ImpairedTx, type FaultSpec } from '../../src/stack/fault.js';
import type { LinkRx, LinkTx } from '../../src/wire/link.js';
import type { ConnHandler, TcpConn } from '../../src/tcp/conn.js';
import type { TcpConfig } from '../../src/tcp/config.js';
import { defaultTcpConfig } from '../../src/tcp/defaults.js';
import { Tun, type RxBatch } from '../../src/tun/index.js';
import { NetNs, uniqueIfName } from './netns.js';

export type HandlerKind =
  /** Echo every byte back; close when the app closes. */
  | 'echo'
  /** Read and count, hashing what arrives; close when the app closes. */
  | 'discard'
  /** Close first once the app's first byte arrives, after sending `reply` (destination-first close). */
  | 'close-first';

export interface StackEnvOptions {
  handler: HandlerKind | ((req: PendingSyn) => ConnHandler);
  tcp?: Partial<TcpConfig>;
  fault?: FaultSpec;
  mtu?: number;
  vnetHdr?: boolean;
  /** Reply for 'close-first'. */
  reply?: Buffer;
}

export interface StackEnv {
  ns: NetNs;
  tun: Tun;
  stack: Stack;
  hub: EventHub;
  /** The namespace's address on the device. */
  clientAddr: string;
  /** An address the stack answers for. */
  serverAddr: string;
  /** Bytes received per connection id and their SHA-256 (discard handler). */
  received: Map<number, { bytes: number; hash: crypto.Hash }>;
  close(): void;
}

let subnet = 0;

export function startStackEnv(opts: StackEnvOptions): StackEnv {
  const n = ((process.pid + subnet++ * 7) % 200) + 20;
  const clientAddr = `198.18.${n}.1`;
  const serverAddr = `198.18.${n}.2`;
  const ns = NetNs.create('stk');
  const name = uniqueIfName('sfs');
  const vnetHdr = opts.vnetHdr ?? true;
  const tun = Tun.open({ name, vnetHdr });
  tun.moveToNetns(ns.name);
  if (opts.mtu !== undefined) tun.setMtu(opts.mtu);
  tun.addAddress(`${clientAddr}/24`);
  tun.up();
  const mtu = tun.mtu;
  const tcp = defaultTcpConfig({
    mss: mtu - 40,
    gsoMaxBytes: vnetHdr ? 65535 - 120 : 0,
    ...opts.tcp,
  });
  const hub = new EventHub();
  const received = new Map<number, { bytes: number; hash: crypto.Hash }>();
  let stack!: Stack;
  const makeHandler =
    typeof opts.handler === 'function'
      ? opts.handler
      : () => builtinHandler(opts.handler as HandlerKind, () => stack, received, opts.reply);
  const forwarder: Forwarder = {
    onSyn(req: PendingSyn) {
      stack.acceptPending(req, makeHandler(req));
    },
    onSynAborted() {},
  };
  const fault = opts.fault;
  let link: LinkTx = tun;
  let impairedTx: ImpairedTx | null = null;
  const timers = { now: () => monotonicClock.now(), setTimer: (cb: () => void, ms: number) => setTimeout(cb, ms), clearTimer: (h: unknown) => clearTimeout(h as NodeJS.Timeout) };
  if (fault !== undefined) {
    impairedTx = new ImpairedTx(tun, fault, timers);
    link = impairedTx;
  }
  stack = new Stack({ link, clock: monotonicClock, tcp, forwarder, events: hub });
  let rx: LinkRx = stack;
  let impairedRx: ImpairedRx | null = null;
  if (fault !== undefined) {
    impairedRx = new ImpairedRx(stack, { ...fault, seed: fault.seed + 1 }, timers);
    rx = impairedRx;
  }
  tun.start((batch: RxBatch) => {
    const buf = batch.buffer;
    for (let i = 0; i < batch.count; i++) rx.input(buf, batch.offset[i]!, batch.length[i]!, batch.checksumKnownGood(i));
    rx.flush();
  });
  return {
    ns,
    tun,
    stack,
    hub,
    clientAddr,
    serverAddr,
    received,
    close() {
      impairedRx?.stop();
      impairedTx?.stop();
      stack.stop();
      tun.close();
      ns.destroy();
    },
  };
}

function builtinHandler(
  kind: HandlerKind,
  stack: () => Stack,
  received: StackEnv['received'],
  reply: Buffer | undefined,
): ConnHandler {
  const now = () => monotonicClock.now();
  const kick = (c: TcpConn) => {
    stack().wake(c);
    stack().flushSoon();
  };
  switch (kind) {
    case 'echo':
      return {
        onEstablished() {},
        onData(c, data) {
          c.write(data);
          c.consume(data.length, now());
          kick(c);
        },
        onFin(c) {
          c.close(now());
          kick(c);
        },
        onSendSpace() {},
        onClosed() {},
      };
    case 'discard': {
      const entry = { bytes: 0, hash: crypto.createHash('sha256') };
      return {
        onEstablished(c) {
          received.set(c.id, entry);
        },
        onData(c, data) {
          entry.bytes += data.length;
          entry.hash.update(data);
          c.consume(data.length, now());
          kick(c);
        },
        onFin(c) {
          c.close(now());
          kick(c);
        },
        onSendSpace() {},
        onClosed() {},
      };
    }
    case 'close-first':
      return {
        onEstablished() {},
        onData(c, data) {
          c.consume(data.length, now());
          if (reply !== undefined) c.write(reply);
          c.close(now());
          kick(c);
        },
        onFin() {},
        onSendSpace() {},
        onClosed() {},
      };
  }
}
