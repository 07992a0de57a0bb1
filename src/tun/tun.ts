/**
 * A Linux TUN device: open/attach, configure through iproute2, receive packets in batches driven
 * by the event loop, and transmit through a ring of fixed slots without per-packet allocation.
 *
 *   const tun = Tun.open({ name: 'synfin0' });
 *   tun.setMtu(1500); tun.addAddress('198.18.0.1/15'); tun.up();
 *   tun.start((batch) => { for (let i = 0; i < batch.count; i++) stack.input(batch.buffer, batch.offset[i]!, ...) });
 *   const off = tun.txReserve(); if (off >= 0) { write vnet header + IP packet at off; tun.txCommit(off, len); }
 *   tun.txFlush();
 *
 * Receive: the addon drains the fd into one rx buffer of `batchSize` slots and calls back once per
 * batch; the RxBatch handed to onBatch is one reused object whose typed arrays are rewritten for
 * every batch, and whose bytes are valid only during the callback.
 *
 * Transmit: `txBuffer` holds `txSlots` slots of `slotSize` bytes. txReserve() gives the offset of
 * the next free slot, txCommit() queues it, txFlush() writes the queue (one write() per packet).
 * When the kernel says EAGAIN the rest stays queued and is flushed when the fd is writable; when
 * the ring is full txReserve() returns -1 and 'drain' (and the onTxDrain callbacks) tell when to
 * retry. Tun implements LinkTx (src/stack/link.ts).
 *
 * Multi-queue (issue 24 item 5): `Tun.openQueues({ name, multiQueue: true }, n)` opens the device
 * with IFF_MULTI_QUEUE and attaches n queues, one fd and one Tun each (each with its own rx batch
 * and tx ring); the device (address, MTU, routes, up) is configured once, through any of them.
 * The kernel spreads the flows over the queues (drivers/net/tun.c, tun_automq_select_queue): a
 * packet goes to the queue a flow-table entry names for its symmetric flow hash
 * (__skb_get_hash_symmetric: the same for both directions of a 4-tuple), else to queue
 * (hash × queues) >> 32; every packet written on a queue records that queue for its flow
 * (tun_flow_update, entries expire after 3 s, at most 4,096). So a flow's packets all arrive on
 * one queue as long as its replies are written on that same queue and the number of queues does
 * not change (closing a queue moves the last queue into its index).
 */
import { EventEmitter } from 'node:events';
import { TunClosedError, TunIoError } from '../errors.js';
import type { LinkTx } from '../wire/link.js';
import { linkMtu, runIp, type IpOptions } from './ip.js';
import { loadAddon, type NativeTunDevice } from '../native/addon.js';
import { tunOpenError } from './open-error.js';
import { VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VNET_HDR_LEN } from '../wire/vnet.js';

/** Bytes per slot: a 64 KB GSO packet (IPv6: 65535 payload + 40 header) plus the vnet header, rounded up. */
export const DEFAULT_SLOT_SIZE = 65536 + 128;
export const DEFAULT_BATCH_SIZE = 64;
/** Payload views a packet may carry (txAttach); the addon allows up to 8. */
export const TX_MAX_VIEWS = 4;
export const DEFAULT_NAME = 'synfin0';
/** Queues one multi-queue TUN device can have (MAX_TAP_QUEUES in drivers/net/tun.c). */
export const MAX_QUEUES = 256;

export interface TunOpenOptions {
  /** Interface name, at most 15 bytes; a `%d` is replaced by the kernel. Default 'synfin0'. */
  name?: string;
  /** Prefix packets with struct virtio_net_hdr and enable checksum/TSO offload. Default true. */
  vnetHdr?: boolean;
  /** Packets per receive batch. Default 64. */
  batchSize?: number;
  /** Slots in the transmit ring. Default 2 × batchSize. */
  txSlots?: number;
  /** Bytes per rx and tx slot (vnet header included). Default DEFAULT_SLOT_SIZE. */
  slotSize?: number;
  /**
   * Open the device with IFF_MULTI_QUEUE: this fd is one queue of it, and opening the same name
   * with multiQueue again attaches another queue (see Tun.openQueues). The kernel refuses
   * (EINVAL) to mix: a device made without it cannot get a second queue, and the reverse; and a
   * queue must ask for the vnetHdr setting the device has (the kernel would give it the device's
   * silently: synfin refuses with EINVAL). Default false: one queue, a second open of the name fails with EBUSY.
   */
  multiQueue?: boolean;
  /** Network namespace the device's ip commands run in (`ip -n NS`); default: the current one. */
  netns?: string;
  /**
   * Adopt this open TUN fd (attached to `name` by the process that exec'ed this one, see
   * src/tun/caps.ts) instead of opening /dev/net/tun: no capability needed.
   */
  fd?: number;
  /**
   * With fd: adopt a duplicate of it (F_DUPFD_CLOEXEC), so closing this Tun leaves `fd` open and
   * its queue attached (a worker thread's queue, src/workers/: the main thread keeps the fd for
   * the worker that replaces it).
   */
  dup?: boolean;
}

/** What `ip -j addr show` says about the device: read without any capability. */
export interface LinkState {
  up: boolean;
  mtu: number;
  /** 'ADDR/PREFIXLEN', as the kernel prints them. */
  addresses: string[];
}

/** Traffic counters, plain numbers (read them from a metrics collect()). Bytes are IP bytes, vnet header excluded. */
export class TunCounters {
  rxPackets = 0;
  rxBytes = 0;
  rxBatches = 0;
  txPackets = 0;
  txBytes = 0;
  /** Packets the kernel refused with a hard error (EINVAL for a malformed packet, EIO...); dropped. */
  txDropped = 0;
  /** errno (positive) of the last refused packet, 0 if none. */
  txLastErrno = 0;
  /** Flushes that stopped at EAGAIN. */
  txBlocked = 0;
}

/**
 * One batch of received packets. The same object (and the same typed arrays) is passed to every
 * onBatch call; entries [0, count) are valid, and only during the call.
 */
export class RxBatch {
  /** Packets in this batch. */
  count = 0;
  /** The rx buffer all offsets point into. */
  readonly buffer: Buffer;
  /** Offset of packet i's IP header in `buffer` (after the vnet header). */
  readonly offset: Int32Array;
  /** Length of packet i's IP packet (vnet header excluded). */
  readonly length: Int32Array;
  /** virtio_net_hdr fields of packet i (all zero without vnetHdr). */
  readonly flags: Uint8Array;
  readonly gsoType: Uint8Array;
  readonly hdrLen: Uint16Array;
  readonly gsoSize: Uint16Array;
  readonly csumStart: Uint16Array;
  readonly csumOffset: Uint16Array;

  constructor(buffer: Buffer, capacity: number) {
    this.buffer = buffer;
    this.offset = new Int32Array(capacity);
    this.length = new Int32Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.gsoType = new Uint8Array(capacity);
    this.hdrLen = new Uint16Array(capacity);
    this.gsoSize = new Uint16Array(capacity);
    this.csumStart = new Uint16Array(capacity);
    this.csumOffset = new Uint16Array(capacity);
  }

  /**
   * The kernel vouches for packet i's transport checksum: it is partial (NEEDS_CSUM, the packet
   * was made on this host) or already verified (DATA_VALID).
   */
  checksumKnownGood(i: number): boolean {
    return (this.flags[i]! & (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)) !== 0;
  }
}

export type RxHandler = (batch: RxBatch) => void;

const NOOP_RX: RxHandler = () => {};

export class Tun extends EventEmitter implements LinkTx {
  /** The kernel's name for the device. */
  readonly name: string;
  /** The TUN file descriptor (-1 once closed). */
  get fd(): number {
    return this.closed ? -1 : this.device.fd;
  }
  readonly vnetHdr: boolean;
  /** The device has IFF_MULTI_QUEUE and this Tun is one of its queues. */
  readonly multiQueue: boolean;
  /** Namespace for ip commands (set by moveToNetns); undefined = the current one. */
  netns: string | undefined;
  /** The queues of one device opened together (Tun.openQueues), this one included: they share a namespace. */
  private queueGroup: Tun[];
  readonly counters: TunCounters;
  readonly slotSize: number;
  readonly batchSize: number;

  // Receive.
  private readonly device: NativeTunDevice;
  private readonly rxBuffer: Buffer;
  private readonly rxLengths: Int32Array;
  private readonly rxBatch: RxBatch;
  private rxHandler: RxHandler;
  private reading: boolean;
  private closed: boolean;

  // Transmit ring: slots [txHead, txHead + txCount) (mod txSlots) are committed and not yet written.
  readonly txBuffer: Buffer;
  readonly txSlotSize: number;
  readonly txSlots: number;
  private readonly txOffsets: Int32Array;
  private readonly txLengths: Int32Array;
  private readonly txResult: Int32Array;
  /**
   * Payload views (txAttach): slot i's packet continues with txViews[i * txMaxViews + j] for
   * j < txViewCounts[i], sliced by txViewOffsets/txViewLengths, written with the slot in one writev.
   * A reference is held until its packet is written, then dropped.
   */
  readonly txMaxViews = TX_MAX_VIEWS;
  private readonly txViews: (Buffer | undefined)[];
  private readonly txViewOffsets: Int32Array;
  private readonly txViewLengths: Int32Array;
  private readonly txViewCounts: Int32Array;
  private txHead: number;
  private txCount: number;
  private txWaitingWritable: boolean;
  private txDrainWanted: boolean;
  private txDrainCallbacks: Array<() => void>;

  private readonly onNativeBatch: (count: number) => void;
  private readonly onNativeError: (err: NodeJS.ErrnoException) => void;
  private readonly onNativeWritable: () => void;

  /** Opens (or attaches to) the device. Throws the typed errors of src/errors.ts. */
  static open(options: TunOpenOptions = {}): Tun {
    const name = options.name ?? DEFAULT_NAME;
    const vnetHdr = options.vnetHdr ?? true;
    const addon = loadAddon();
    let device: NativeTunDevice;
    try {
      if (options.fd !== undefined) device = addon.open(name, { vnetHdr, fd: options.fd, dup: options.dup === true });
      else if (options.multiQueue === true) device = addon.open(name, { vnetHdr, multiQueue: true });
      else device = addon.open(name, { vnetHdr });
    } catch (err) {
      throw tunOpenError(err, name);
    }
    return new Tun(device, options);
  }

  /**
   * Opens `count` queues of one multi-queue device (multiQueue is implied): the first creates or
   * attaches to `options.name`, the others attach to the name the kernel gave it (a `%d` is
   * expanded once). Attach them all before moving the device to another namespace (moveToNetns):
   * TUNSETIFF finds the name in the namespace the opening process is in. If one fails, those
   * already opened are closed and the error is thrown.
   */
  static openQueues(options: TunOpenOptions, count: number): Tun[] {
    if (!Number.isInteger(count) || count < 1 || count > MAX_QUEUES) {
      throw new RangeError(`queues must be an integer in 1..${MAX_QUEUES}`);
    }
    if (options.fd !== undefined) throw new RangeError('openQueues opens its own fds: fd is not allowed');
    const queues: Tun[] = [];
    try {
      queues.push(Tun.open({ ...options, multiQueue: true }));
      const name = queues[0]!.name;
      for (let i = 1; i < count; i++) queues.push(Tun.open({ ...options, name, multiQueue: true }));
    } catch (err) {
      for (const q of queues) q.close();
      throw err;
    }
    for (const q of queues) q.queueGroup = queues;
    return queues;
  }

  /** Wraps an already open device; use Tun.open() unless you are injecting a fake. */
  constructor(device: NativeTunDevice, options: TunOpenOptions = {}) {
    super();
    const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    const slotSize = options.slotSize ?? DEFAULT_SLOT_SIZE;
    const txSlots = options.txSlots ?? 2 * batchSize;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer`);
    if (!Number.isInteger(txSlots) || txSlots < 1) throw new RangeError(`txSlots must be a positive integer`);
    if (!Number.isInteger(slotSize) || slotSize <= VNET_HDR_LEN + 20) throw new RangeError(`slotSize too small`);
    if (slotSize * Math.max(batchSize, txSlots) > 0x7fffffff) throw new RangeError(`rings larger than 2 GiB`);

    this.device = device;
    this.name = device.name;
    this.vnetHdr = device.vnetHdr;
    this.multiQueue = device.multiQueue;
    this.netns = options.netns;
    this.queueGroup = [this];
    this.counters = new TunCounters();
    this.slotSize = slotSize;
    this.batchSize = batchSize;

    this.rxBuffer = Buffer.alloc(batchSize * slotSize);
    this.rxLengths = new Int32Array(batchSize);
    this.rxBatch = new RxBatch(this.rxBuffer, batchSize);
    this.rxHandler = NOOP_RX;
    this.reading = false;
    this.closed = false;

    this.txBuffer = Buffer.alloc(txSlots * slotSize);
    this.txSlotSize = slotSize;
    this.txSlots = txSlots;
    this.txOffsets = new Int32Array(txSlots);
    for (let i = 0; i < txSlots; i++) this.txOffsets[i] = i * slotSize;
    this.txLengths = new Int32Array(txSlots);
    this.txResult = new Int32Array(5);
    this.txViews = new Array<Buffer | undefined>(txSlots * TX_MAX_VIEWS).fill(undefined);
    this.txViewOffsets = new Int32Array(txSlots * TX_MAX_VIEWS);
    this.txViewLengths = new Int32Array(txSlots * TX_MAX_VIEWS);
    this.txViewCounts = new Int32Array(txSlots);
    // The ring never changes: the device keeps it, and a flush passes only where and how many.
    device.bindTx(this.txBuffer, this.txOffsets, this.txLengths, this.txResult, this.txViews, this.txViewOffsets, this.txViewLengths, this.txViewCounts);
    this.txHead = 0;
    this.txCount = 0;
    this.txWaitingWritable = false;
    this.txDrainWanted = false;
    this.txDrainCallbacks = [];

    // Bound once: the addon calls these for every batch and writable event.
    this.onNativeBatch = (count) => this.deliverBatch(count);
    this.onNativeError = (err) => this.readFailed(err);
    this.onNativeWritable = () => this.writable();
  }

  // ---- configuration (iproute2) ----

  /**
   * Moves the device into network namespace `ns` (the fd stays attached); later ip commands run
   * there, through this Tun and the other queues Tun.openQueues opened with it.
   */
  moveToNetns(ns: string): void {
    runIp(['link', 'set', 'dev', this.name, 'netns', ns], this.ipOpts(undefined));
    for (const q of this.queueGroup) q.netns = ns;
  }

  get mtu(): number {
    return linkMtu(this.name, this.ipOpts(undefined));
  }

  setMtu(mtu: number, opts?: IpOptions): void {
    runIp(['link', 'set', 'dev', this.name, 'mtu', String(mtu)], this.ipOpts(opts));
  }

  /** Adds an IPv4 or IPv6 address, e.g. '198.18.0.1/15' or 'fd00::1/64'. */
  addAddress(cidr: string, opts?: IpOptions): void {
    runIp(['addr', 'add', cidr, 'dev', this.name], this.ipOpts(opts));
  }

  /** Routes `cidr` (IPv4 or IPv6) through the device. */
  addRoute(cidr: string, opts?: IpOptions): void {
    runIp(['route', 'add', cidr, 'dev', this.name], this.ipOpts(opts));
  }

  /** The device's administrative state, MTU and addresses (reading needs no capability). */
  linkState(opts?: IpOptions): LinkState {
    const out = runIp(['-j', 'addr', 'show', 'dev', this.name], this.ipOpts(opts));
    const link = (JSON.parse(out) as Array<{ flags?: string[]; mtu?: number; addr_info?: Array<{ local?: string; prefixlen?: number }> }>)[0];
    return {
      up: link?.flags?.includes('UP') === true,
      mtu: link?.mtu ?? 0,
      addresses: (link?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`),
    };
  }

  /** Whether a route for exactly `cidr` ('default' included) through this device exists. */
  hasRoute(cidr: string, opts?: IpOptions): boolean {
    const family = cidr.includes(':') ? '-6' : '-4';
    const sel = cidr === 'default' ? ['default'] : ['exact', cidr];
    const out = runIp([family, '-j', 'route', 'show', ...sel, 'dev', this.name], this.ipOpts(opts)).trim();
    return out !== '' && out !== '[]';
  }

  up(opts?: IpOptions): void {
    runIp(['link', 'set', 'dev', this.name, 'up'], this.ipOpts(opts));
  }

  down(opts?: IpOptions): void {
    runIp(['link', 'set', 'dev', this.name, 'down'], this.ipOpts(opts));
  }

  private ipOpts(opts: IpOptions | undefined): IpOptions {
    return { netns: opts?.netns ?? this.netns };
  }

  // ---- receive ----

  /** Starts reading; onBatch is called once per batch, on the event loop. Replaces an earlier handler. */
  start(onBatch: RxHandler): void {
    if (this.closed) throw new TunClosedError(`TUN device ${this.name} is closed`);
    this.rxHandler = onBatch;
    if (this.reading) return;
    this.device.startReading(
      this.rxBuffer,
      this.rxLengths,
      this.slotSize,
      this.batchSize,
      this.onNativeBatch,
      this.onNativeError,
    );
    this.reading = true;
  }

  /** Stops reading (packets queue in the kernel, which drops them past its queue length). */
  stop(): void {
    if (!this.reading) return;
    this.reading = false;
    this.device.stopReading();
  }

  private deliverBatch(count: number): void {
    const b = this.rxBatch;
    const buf = this.rxBuffer;
    const slot = this.slotSize;
    const lens = this.rxLengths;
    let bytes = 0;
    if (this.vnetHdr) {
      for (let i = 0; i < count; i++) {
        const base = i * slot;
        const len = lens[i]! - VNET_HDR_LEN;
        b.offset[i] = base + VNET_HDR_LEN;
        b.length[i] = len > 0 ? len : 0;
        b.flags[i] = buf[base]!;
        b.gsoType[i] = buf[base + 1]!;
        b.hdrLen[i] = buf[base + 2]! | (buf[base + 3]! << 8);
        b.gsoSize[i] = buf[base + 4]! | (buf[base + 5]! << 8);
        b.csumStart[i] = buf[base + 6]! | (buf[base + 7]! << 8);
        b.csumOffset[i] = buf[base + 8]! | (buf[base + 9]! << 8);
        bytes += len;
      }
    } else {
      for (let i = 0; i < count; i++) {
        b.offset[i] = i * slot;
        b.length[i] = lens[i]!;
        bytes += lens[i]!;
      }
    }
    b.count = count;
    const c = this.counters;
    c.rxPackets += count;
    c.rxBytes += bytes;
    c.rxBatches++;
    this.rxHandler(b);
  }

  private readFailed(err: NodeJS.ErrnoException): void {
    this.reading = false;
    this.emit('error', new TunIoError(`reading TUN device ${this.name} failed: ${err.message}`, { cause: err }));
  }

  // ---- transmit ----

  /** Committed packets not yet handed to the kernel. */
  get txQueued(): number {
    return this.txCount;
  }

  /**
   * Offset in txBuffer of a free slot of txSlotSize bytes, or -1 when the ring is full (then
   * 'drain' / onTxDrain signals room). Reserving again without committing returns the same slot.
   */
  txReserve(): number {
    if (this.closed) return -1;
    if (this.txCount === this.txSlots) {
      // Full of packets nobody flushed yet: try to make room now.
      if (!this.txWaitingWritable) this.txFlush();
      if (this.txCount === this.txSlots) {
        this.txDrainWanted = true;
        return -1;
      }
    }
    let slot = this.txHead + this.txCount;
    if (slot >= this.txSlots) slot -= this.txSlots;
    if (this.txViewCounts[slot] !== 0) this.dropViews(slot);
    return this.txOffsets[slot]!;
  }

  /**
   * Appends `buf[off, off+len)` to the packet in the reserved slot at `offset`, after the bytes the
   * slot itself will hold: the payload goes to the kernel from `buf` (one writev), not copied into
   * the ring. `buf` must not change until the packet is written. False when the slot already has
   * txMaxViews views (copy instead).
   */
  txAttach(offset: number, buf: Buffer, off: number, len: number): boolean {
    let slot = this.txHead + this.txCount;
    if (slot >= this.txSlots) slot -= this.txSlots;
    if (this.txCount === this.txSlots || offset !== this.txOffsets[slot]) {
      throw new RangeError(`txAttach(${offset}): not the reserved slot`);
    }
    const k = this.txViewCounts[slot]!;
    if (k >= TX_MAX_VIEWS) return false;
    const v = slot * TX_MAX_VIEWS + k;
    this.txViews[v] = buf;
    this.txViewOffsets[v] = off;
    this.txViewLengths[v] = len;
    this.txViewCounts[slot] = k + 1;
    return true;
  }

  private dropViews(slot: number): void {
    const base = slot * TX_MAX_VIEWS;
    for (let j = this.txViewCounts[slot]! - 1; j >= 0; j--) this.txViews[base + j] = undefined;
    this.txViewCounts[slot] = 0;
  }

  /** Queues the reserved slot at `offset`, holding `length` bytes (vnet header included when vnetHdr). */
  txCommit(offset: number, length: number): void {
    let slot = this.txHead + this.txCount;
    if (slot >= this.txSlots) slot -= this.txSlots;
    if (this.txCount === this.txSlots || offset !== this.txOffsets[slot]) {
      throw new RangeError(`txCommit(${offset}): not the reserved slot`);
    }
    if (!(length > 0 && length <= this.txSlotSize)) {
      throw new RangeError(`txCommit: length ${length} outside 1..${this.txSlotSize}`);
    }
    this.txLengths[slot] = length;
    this.txCount++;
  }

  /** Writes the queued packets. What the kernel cannot take now (EAGAIN) is written when the fd is writable. */
  txFlush(): void {
    if (this.closed || this.txWaitingWritable || this.txCount === 0) return;
    const r = this.txResult;
    const consumed = this.device.writeBound(this.txHead, this.txCount);
    // Written (or refused) packets let go of their payload views.
    for (let i = 0, slot = this.txHead; i < consumed; i++) {
      if (this.txViewCounts[slot] !== 0) this.dropViews(slot);
      if (++slot === this.txSlots) slot = 0;
    }
    const written = r[0]!;
    const refused = r[1]!;
    const c = this.counters;
    c.txPackets += written;
    c.txBytes += this.vnetHdr ? r[4]! - written * VNET_HDR_LEN : r[4]!;
    if (refused > 0) {
      c.txDropped += refused;
      c.txLastErrno = r[2]!;
    }
    this.txHead = (this.txHead + consumed) % this.txSlots;
    this.txCount -= consumed;
    if (r[3] === 1) {
      c.txBlocked++;
      this.txWaitingWritable = true;
      this.device.onWritable(this.onNativeWritable);
    }
  }

  /** Calls `callback` once, the next time a full ring has room again. */
  onTxDrain(callback: () => void): void {
    this.txDrainCallbacks.push(callback);
  }

  private writable(): void {
    this.txWaitingWritable = false;
    this.txFlush();
    if (this.txDrainWanted && this.txCount < this.txSlots && !this.closed) {
      this.txDrainWanted = false;
      const cbs = this.txDrainCallbacks;
      this.txDrainCallbacks = [];
      for (let i = 0; i < cbs.length; i++) cbs[i]!();
      this.emit('drain');
    }
  }

  // ---- lifetime ----

  /** Whether an active device keeps the event loop alive (default true). */
  ref(): void {
    this.device.ref();
  }

  unref(): void {
    this.device.unref();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Stops reading, drops unsent packets and closes the fd (a non-persistent device disappears). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reading = false;
    this.txCount = 0;
    this.txViews.fill(undefined);
    this.txViewCounts.fill(0);
    this.txDrainCallbacks = [];
    this.rxHandler = NOOP_RX;
    this.device.close();
  }
}
