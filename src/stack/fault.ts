/**
 * A seeded fault injector that sits between a link and the stack, in both directions: loss,
 * duplication, reordering and delay, reproducible from a seed. This kernel has no netem qdisc, so
 * this is how tests (and `synfin run --impair`) put a bad network in front of the stack. It is
 * off the fast path: impaired packets are copied.
 */
import { ConfigError } from '../errors.js';
import type { LinkRx, LinkTx } from '../wire/link.js';

export interface FaultSpec {
  /** PRNG seed: the same seed and traffic give the same faults. */
  seed: number;
  /** Probability a packet is dropped. */
  loss: number;
  /** Probability a packet is delivered twice. */
  duplicate: number;
  /** Probability a packet is held back by `reorderMs` extra, letting later ones overtake it. */
  reorder: number;
  reorderMs: number;
  /** Fixed one-way delay added to every packet, ms. */
  delayMs: number;
  /** Uniform jitter added on top of the delay (0..jitterMs); packets may then reorder. */
  jitterMs: number;
}

export const NO_FAULTS: FaultSpec = { seed: 1, loss: 0, duplicate: 0, reorder: 0, reorderMs: 0, delayMs: 0, jitterMs: 0 };

/** mulberry32: a small, fast, well-distributed 32-bit PRNG (public-domain construction). */
export class SeededRandom {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

interface Held {
  due: number;
  data: Buffer;
  flag: boolean;
}

export interface FaultCounters {
  passed: number;
  dropped: number;
  duplicated: number;
  delayed: number;
}

export interface Timers {
  now(): number;
  setTimer(cb: () => void, ms: number): unknown;
  clearTimer(h: unknown): void;
}

/** One direction of impairment: decides each packet's fate and holds delayed ones. */
class Impairment {
  readonly counters: FaultCounters = { passed: 0, dropped: 0, duplicated: 0, delayed: 0 };
  private readonly rng: SeededRandom;
  private held: Held[] = [];
  private timer: unknown = null;
  private timerAt = Infinity;
  private readonly onTimerBound = (): void => this.onTimer();

  constructor(
    private readonly spec: FaultSpec,
    seed: number,
    private readonly timers: Timers,
    private readonly deliver: (data: Buffer, off: number, len: number, flag: boolean) => void,
    private readonly afterRelease: () => void,
  ) {
    this.rng = new SeededRandom(seed);
  }

  /** Returns true when the packet may pass straight through now (no copy needed). */
  offer(buf: Buffer, off: number, len: number, flag: boolean): boolean {
    const s = this.spec;
    if (s.loss > 0 && this.rng.next() < s.loss) {
      this.counters.dropped++;
      return false;
    }
    const copies = s.duplicate > 0 && this.rng.next() < s.duplicate ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    let direct = false;
    for (let c = 0; c < copies; c++) {
      let delay = s.delayMs;
      if (s.jitterMs > 0) delay += this.rng.next() * s.jitterMs;
      if (s.reorder > 0 && this.rng.next() < s.reorder) delay += s.reorderMs;
      if (delay <= 0 && c === 0) {
        direct = true;
        continue;
      }
      this.hold(buf, off, len, flag, this.timers.now() + Math.max(delay, 0));
    }
    if (direct) this.counters.passed++;
    return direct;
  }

  private hold(buf: Buffer, off: number, len: number, flag: boolean, due: number): void {
    this.counters.delayed++;
    const data = Buffer.allocUnsafe(len);
    buf.copy(data, 0, off, off + len);
    const item: Held = { due, data, flag };
    // Mostly in order (fixed delay): insert from the back.
    const held = this.held;
    let i = held.length;
    while (i > 0 && held[i - 1]!.due > due) i--;
    held.splice(i, 0, item);
    this.arm();
  }

  private arm(): void {
    const first = this.held[0];
    if (first === undefined || first.due >= this.timerAt) return;
    if (this.timer !== null) this.timers.clearTimer(this.timer);
    this.timerAt = first.due;
    this.timer = this.timers.setTimer(this.onTimerBound, Math.max(0, first.due - this.timers.now()));
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    this.release(this.timers.now());
  }

  /** Deliver every held packet due by `now` (tests with a manual clock call this). */
  release(now: number): void {
    const held = this.held;
    let n = 0;
    while (n < held.length && held[n]!.due <= now) n++;
    if (n > 0) {
      const due = held.splice(0, n);
      for (const h of due) {
        this.counters.passed++;
        this.deliver(h.data, 0, h.data.length, h.flag);
      }
      this.afterRelease();
    }
    this.arm();
  }

  get heldCount(): number {
    return this.held.length;
  }

  stop(): void {
    if (this.timer !== null) this.timers.clearTimer(this.timer);
    this.timer = null;
    this.held = [];
  }
}

/** Impairs packets from a link on their way into the stack. */
export class ImpairedRx implements LinkRx {
  private readonly impairment: Impairment;
  constructor(
    private readonly inner: LinkRx,
    spec: FaultSpec,
    timers: Timers,
  ) {
    this.impairment = new Impairment(
      spec,
      spec.seed,
      timers,
      (d, o, l, f) => inner.input(d, o, l, f),
      () => inner.flush(),
    );
  }
  get counters(): FaultCounters {
    return this.impairment.counters;
  }
  input(buf: Buffer, off: number, len: number, checksumKnownGood: boolean): void {
    if (this.impairment.offer(buf, off, len, checksumKnownGood)) this.inner.input(buf, off, len, checksumKnownGood);
  }
  flush(): void {
    this.inner.flush();
  }
  release(now: number): void {
    this.impairment.release(now);
  }
  stop(): void {
    this.impairment.stop();
  }
}

/** Impairs packets from the stack on their way out to a link. */
export class ImpairedTx implements LinkTx {
  readonly vnetHdr: boolean;
  readonly txSlotSize: number;
  readonly txBuffer: Buffer;
  private readonly impairment: Impairment;

  constructor(
    private readonly inner: LinkTx,
    spec: FaultSpec,
    timers: Timers,
  ) {
    this.vnetHdr = inner.vnetHdr;
    this.txSlotSize = inner.txSlotSize;
    // One staging slot: each packet is decided at commit time.
    this.txBuffer = Buffer.allocUnsafe(inner.txSlotSize);
    this.impairment = new Impairment(
      spec,
      (spec.seed ^ 0x5bd1e995) >>> 0,
      timers,
      (d, o, l) => this.forward(d, o, l),
      () => inner.txFlush(),
    );
  }
  get counters(): FaultCounters {
    return this.impairment.counters;
  }
  txReserve(): number {
    return 0;
  }
  txCommit(offset: number, length: number): void {
    if (this.impairment.offer(this.txBuffer, offset, length, false)) this.forward(this.txBuffer, offset, length);
  }
  txFlush(): void {
    this.inner.txFlush();
  }
  onTxDrain(callback: () => void): void {
    this.inner.onTxDrain(callback);
  }
  release(now: number): void {
    this.impairment.release(now);
  }
  stop(): void {
    this.impairment.stop();
  }

  private forward(data: Buffer, off: number, len: number): void {
    const slot = this.inner.txReserve();
    if (slot < 0) {
      // The device ring is full: this is loss the network could have caused too; TCP recovers.
      this.impairment.counters.dropped++;
      return;
    }
    data.copy(this.inner.txBuffer, slot, off, off + len);
    this.inner.txCommit(slot, len);
  }
}

/** Parse `--impair`, e.g. `loss=0.02,dup=0.01,reorder=0.02,reorder-ms=5,delay=5,jitter=1,seed=7`. */
export function parseFaultSpec(text: string): FaultSpec {
  const spec: FaultSpec = { ...NO_FAULTS };
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const [k, v] = part.split('=');
    const n = Number(v);
    if (k === undefined || v === undefined || !Number.isFinite(n) || n < 0) throw new ConfigError(`--impair: bad item "${part}" (keys: loss, dup, reorder, reorder-ms, delay, jitter, seed)`);
    switch (k.trim()) {
      case 'seed': spec.seed = n; break;
      case 'loss': spec.loss = n; break;
      case 'dup': case 'duplicate': spec.duplicate = n; break;
      case 'reorder': spec.reorder = n; break;
      case 'reorder-ms': spec.reorderMs = n; break;
      case 'delay': spec.delayMs = n; break;
      case 'jitter': spec.jitterMs = n; break;
      default: throw new ConfigError(`--impair: unknown key "${k}" (keys: loss, dup, reorder, reorder-ms, delay, jitter, seed)`);
    }
  }
  for (const p of [spec.loss, spec.duplicate, spec.reorder]) if (p > 1) throw new ConfigError('--impair: probabilities must be ≤ 1');
  return spec;
}
