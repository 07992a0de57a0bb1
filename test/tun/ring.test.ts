/**
 * Tun's batching logic over a fake native device: the tx ring (reserve/commit/flush, EAGAIN,
 * backpressure and drain, refused packets) and the rx batch (vnet header parsing, counters).
 * The real device's side of the same contract is exercised in traffic.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { SynfinError } from '../../src/errors.js';
import {
  RxBatch,
  Tun,
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VNET_HDR_LEN,
  writeVnetHeader,
  writeVnetNone,
  writeVnetTcpCsum,
  writeVnetTcpGso,
  type NativeTunDevice,
} from '../../src/tun/index.js';

const EINVAL = 22;

/** Implements the addon's contract in memory. */
class FakeDevice implements NativeTunDevice {
  readonly fd = 99;
  readonly name = 'fake0';
  readonly vnetHdr: boolean;
  readonly multiQueue = false;
  /** Packets the "kernel" accepts before answering EAGAIN. */
  capacity = Infinity;
  /** Packets written, copied. */
  written: Buffer[] = [];
  /** Packets whose first byte is this are refused with EINVAL. */
  refuseMarker = 0xee;
  writeCalls = 0;
  writableCb: (() => void) | null = null;
  closeCalls = 0;
  rx: { batch: Buffer; lengths: Int32Array; slot: number; max: number; onBatch: (n: number) => void; onError: (e: NodeJS.ErrnoException) => void } | null = null;

  constructor(vnetHdr: boolean) {
    this.vnetHdr = vnetHdr;
  }

  startReading(batch: Buffer, lengths: Int32Array, slot: number, max: number, onBatch: (n: number) => void, onError: (e: NodeJS.ErrnoException) => void): void {
    this.rx = { batch, lengths, slot, max, onBatch, onError };
  }
  stopReading(): void {
    this.rx = null;
  }
  /** Views of each written packet's payload as passed (the fake keeps references to check their release). */
  viewsSeen = 0;
  writeBatch(
    buf: Buffer,
    offsets: Int32Array,
    lengths: Int32Array,
    start: number,
    count: number,
    result: Int32Array,
    views?: readonly (Buffer | undefined)[],
    viewOffsets?: Int32Array,
    viewLengths?: Int32Array,
    viewCounts?: Int32Array,
  ): number {
    this.writeCalls++;
    let written = 0;
    let refused = 0;
    let lastErr = 0;
    let bytes = 0;
    let blocked = 0;
    let i = 0;
    for (; i < count; i++) {
      const slot = (start + i) % offsets.length;
      const off = offsets[slot]!;
      const len = lengths[slot]!;
      if (buf[off + (this.vnetHdr ? VNET_HDR_LEN : 0)] === this.refuseMarker) {
        refused++;
        lastErr = EINVAL;
        continue;
      }
      if (this.capacity === 0) {
        blocked = 1;
        break;
      }
      this.capacity--;
      // As writev: the slot's bytes, then its views.
      const parts = [buf.subarray(off, off + len)];
      const maxViews = viewOffsets === undefined ? 0 : viewOffsets.length / offsets.length;
      for (let j = 0; j < (viewCounts?.[slot] ?? 0); j++) {
        const v = slot * maxViews + j;
        parts.push(views![v]!.subarray(viewOffsets![v]!, viewOffsets![v]! + viewLengths![v]!));
        this.viewsSeen++;
      }
      const packet = Buffer.concat(parts);
      this.written.push(packet);
      written++;
      bytes += packet.length;
    }
    result[0] = written;
    result[1] = refused;
    result[2] = lastErr;
    result[3] = blocked;
    result[4] = bytes;
    return i;
  }
  /** The ring of bindTx, which writeBound writes from as the addon does. */
  private bound: Parameters<NativeTunDevice['bindTx']> | null = null;
  bindTx(...ring: Parameters<NativeTunDevice['bindTx']>): void {
    this.bound = ring;
  }
  writeBound(start: number, count: number): number {
    const [buf, offsets, lengths, result, views, viewOffsets, viewLengths, viewCounts] = this.bound!;
    return this.writeBatch(buf, offsets, lengths, start, count, result, views, viewOffsets, viewLengths, viewCounts);
  }
  onWritable(cb: () => void): void {
    this.writableCb = cb;
  }
  ref(): void {}
  unref(): void {}
  close(): void {
    this.closeCalls++;
  }

  /** The fd became writable and can take `n` more packets. */
  becomeWritable(n: number): void {
    this.capacity = n;
    const cb = this.writableCb;
    this.writableCb = null;
    cb?.();
  }

  /** Delivers raw packets (vnet header included when vnetHdr) as one batch. */
  deliver(packets: Buffer[]): void {
    const rx = this.rx!;
    packets.forEach((p, i) => {
      p.copy(rx.batch, i * rx.slot);
      rx.lengths[i] = p.length;
    });
    rx.onBatch(packets.length);
  }
}

function makeTun(opts: { vnetHdr?: boolean; txSlots?: number } = {}): { tun: Tun; dev: FakeDevice } {
  const dev = new FakeDevice(opts.vnetHdr ?? false);
  const tun = new Tun(dev, { txSlots: opts.txSlots ?? 4, batchSize: 4, slotSize: 256 });
  return { tun, dev };
}

/** Queues one packet of `len` bytes whose first byte is `tag`. */
function queue(tun: Tun, tag: number, len = 40): number {
  const off = tun.txReserve();
  if (off < 0) return off;
  tun.txBuffer.fill(tag, off, off + len);
  tun.txCommit(off, len);
  return off;
}

describe('Tun tx ring', () => {
  it('reserve without commit returns the same slot', () => {
    const { tun } = makeTun();
    expect(tun.txReserve()).toBe(tun.txReserve());
  });

  it('reserve after commit returns the next slot', () => {
    const { tun } = makeTun();
    const a = queue(tun, 1);
    const b = queue(tun, 2);
    expect(b - a).toBe(tun.txSlotSize);
    expect(tun.txQueued).toBe(2);
  });

  it('flush writes committed packets in order with one native call', () => {
    const { tun, dev } = makeTun();
    queue(tun, 1);
    queue(tun, 2, 60);
    tun.txFlush();
    expect(dev.writeCalls).toBe(1);
    expect(dev.written.map((p) => [p[0], p.length])).toEqual([
      [1, 40],
      [2, 60],
    ]);
    expect(tun.txQueued).toBe(0);
    expect(tun.counters.txPackets).toBe(2);
    expect(tun.counters.txBytes).toBe(100);
  });

  it('attached payload views follow the slot bytes and are released once written', () => {
    const { tun, dev } = makeTun({ txSlots: 2 });
    const payload = Buffer.from('0123456789');
    const off = tun.txReserve();
    tun.txBuffer.fill(7, off, off + 20);
    expect(tun.txAttach(off, payload, 2, 3)).toBe(true);
    expect(tun.txAttach(off, payload, 8, 2)).toBe(true);
    tun.txCommit(off, 20);
    dev.capacity = 0; // EAGAIN: the views must stay until the packet is written
    tun.txFlush();
    expect(dev.written).toEqual([]);
    dev.capacity = Infinity;
    dev.writableCb!();
    expect(dev.written).toHaveLength(1);
    expect(dev.written[0]!.subarray(20).toString()).toBe('23489');
    expect(dev.written[0]!.subarray(0, 20).every((b) => b === 7)).toBe(true);
    expect(tun.counters.txBytes).toBe(25);
    // The slot comes round again with no views left over.
    queue(tun, 1);
    queue(tun, 2);
    tun.txFlush();
    expect(dev.written.slice(1).map((p) => p.length)).toEqual([40, 40]);
    expect(dev.viewsSeen).toBe(2);
  });

  it('attach is refused beyond tx max views and for a slot not reserved', () => {
    const { tun } = makeTun();
    const off = tun.txReserve();
    const b = Buffer.alloc(8);
    for (let i = 0; i < tun.txMaxViews; i++) expect(tun.txAttach(off, b, i, 1)).toBe(true);
    expect(tun.txAttach(off, b, 0, 1)).toBe(false);
    expect(() => tun.txAttach(off + tun.txSlotSize, b, 0, 1)).toThrow(RangeError);
    // Reserving the same slot again starts it over.
    expect(tun.txReserve()).toBe(off);
    expect(tun.txAttach(off, b, 0, 1)).toBe(true);
  });

  it('flush with nothing queued does not call the device', () => {
    const { tun, dev } = makeTun();
    tun.txFlush();
    expect(dev.writeCalls).toBe(0);
  });

  it('eagain keeps the rest queued and writable flushes it', () => {
    const { tun, dev } = makeTun();
    dev.capacity = 1;
    queue(tun, 1);
    queue(tun, 2);
    queue(tun, 3);
    tun.txFlush();
    expect(dev.written.map((p) => p[0])).toEqual([1]);
    expect(tun.txQueued).toBe(2);
    expect(tun.counters.txBlocked).toBe(1);
    expect(dev.writableCb).not.toBeNull();

    // While waiting for writable, flush does not hammer the device.
    tun.txFlush();
    expect(dev.writeCalls).toBe(1);

    dev.becomeWritable(10);
    expect(dev.written.map((p) => p[0])).toEqual([1, 2, 3]);
    expect(tun.txQueued).toBe(0);
  });

  it('full ring reserve returns minus one while the device blocks', () => {
    const { tun, dev } = makeTun({ txSlots: 2 });
    dev.capacity = 0;
    queue(tun, 1);
    queue(tun, 2);
    expect(tun.txReserve()).toBe(-1);
    expect(tun.txQueued).toBe(2);
  });

  it('full ring drains once writable and calls drain listeners once', () => {
    const { tun, dev } = makeTun({ txSlots: 2 });
    dev.capacity = 0;
    queue(tun, 1);
    queue(tun, 2);
    expect(tun.txReserve()).toBe(-1);
    let drainCallbacks = 0;
    let drainEvents = 0;
    tun.onTxDrain(() => drainCallbacks++);
    tun.on('drain', () => drainEvents++);

    dev.becomeWritable(10);
    expect(tun.txQueued).toBe(0);
    expect(drainCallbacks).toBe(1);
    expect(drainEvents).toBe(1);
    expect(tun.txReserve()).toBeGreaterThanOrEqual(0);

    // A later writable event without a full ring in between drains nothing.
    queue(tun, 3);
    dev.capacity = 0;
    tun.txFlush();
    dev.becomeWritable(10);
    expect(drainCallbacks).toBe(1);
    expect(drainEvents).toBe(1);
  });

  it('full ring of unflushed packets is flushed by reserve', () => {
    const { tun, dev } = makeTun({ txSlots: 2 });
    queue(tun, 1);
    queue(tun, 2);
    expect(tun.txReserve()).toBeGreaterThanOrEqual(0);
    expect(dev.written.map((p) => p[0])).toEqual([1, 2]);
  });

  it('refused packets are dropped counted and not retried', () => {
    const { tun, dev } = makeTun();
    queue(tun, 1);
    queue(tun, dev.refuseMarker);
    queue(tun, 3);
    tun.txFlush();
    expect(dev.written.map((p) => p[0])).toEqual([1, 3]);
    expect(tun.counters.txDropped).toBe(1);
    expect(tun.counters.txLastErrno).toBe(EINVAL);
    expect(tun.txQueued).toBe(0);
    tun.txFlush();
    expect(dev.writeCalls).toBe(1);
  });

  it('ring wraps around and keeps packet order', () => {
    const { tun, dev } = makeTun({ txSlots: 3 });
    const tags: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (let k = 0; k < 2; k++) {
        const tag = round * 2 + k + 1;
        tags.push(tag);
        expect(queue(tun, tag)).toBeGreaterThanOrEqual(0);
      }
      dev.capacity = round % 2 === 0 ? 1 : 10; // sometimes block halfway
      tun.txFlush();
      if (dev.writableCb !== null) dev.becomeWritable(10);
    }
    expect(dev.written.map((p) => p[0])).toEqual(tags);
  });

  it('commit of an offset that was not reserved throws', () => {
    const { tun } = makeTun();
    const off = tun.txReserve();
    expect(() => tun.txCommit(off + tun.txSlotSize, 40)).toThrow(RangeError);
  });

  it('commit longer than a slot throws', () => {
    const { tun } = makeTun();
    const off = tun.txReserve();
    expect(() => tun.txCommit(off, tun.txSlotSize + 1)).toThrow(RangeError);
  });

  it('vnet header bytes are not counted as tx bytes', () => {
    const { tun } = makeTun({ vnetHdr: true });
    queue(tun, 1, VNET_HDR_LEN + 40);
    tun.txFlush();
    expect(tun.counters.txBytes).toBe(40);
  });

  it('close drops queued packets and closes the device once', () => {
    const { tun, dev } = makeTun();
    queue(tun, 1);
    tun.close();
    tun.close();
    expect(dev.closeCalls).toBe(1);
    expect(tun.txQueued).toBe(0);
    expect(tun.txReserve()).toBe(-1);
    tun.txFlush();
    expect(dev.writeCalls).toBe(0);
    expect(tun.fd).toBe(-1);
  });
});

describe('Tun rx batch', () => {
  function vnetPacket(h: number[], ipLen: number, tag: number): Buffer {
    const b = Buffer.alloc(VNET_HDR_LEN + ipLen, tag);
    Buffer.from(h).copy(b, 0);
    return b;
  }

  it('vnet fields are parsed little endian and offsets skip the header', () => {
    const { tun, dev } = makeTun({ vnetHdr: true });
    let seen: { count: number; rows: number[][] } | null = null;
    tun.start((b) => {
      const rows: number[][] = [];
      for (let i = 0; i < b.count; i++) {
        rows.push([b.offset[i]!, b.length[i]!, b.flags[i]!, b.gsoType[i]!, b.hdrLen[i]!, b.gsoSize[i]!, b.csumStart[i]!, b.csumOffset[i]!, b.buffer[b.offset[i]!]!]);
      }
      seen = { count: b.count, rows };
    });
    dev.deliver([
      vnetPacket([1, 1, 0x34, 0x00, 0xb4, 0x05, 0x14, 0x00, 0x10, 0x00], 100, 0x45),
      vnetPacket([2, 0, 0, 0, 0, 0, 0, 0, 0, 0], 60, 0x60),
    ]);
    expect(seen).toEqual({
      count: 2,
      rows: [
        [VNET_HDR_LEN, 100, 1, 1, 0x34, 1460, 20, 16, 0x45],
        [256 + VNET_HDR_LEN, 60, 2, 0, 0, 0, 0, 0, 0x60],
      ],
    });
    expect(tun.counters).toMatchObject({ rxPackets: 2, rxBytes: 160, rxBatches: 1 });
  });

  it('without vnet hdr offsets are slot starts and lengths are raw', () => {
    const { tun, dev } = makeTun({ vnetHdr: false });
    const rows: number[][] = [];
    tun.start((b) => {
      for (let i = 0; i < b.count; i++) rows.push([b.offset[i]!, b.length[i]!, b.flags[i]!]);
    });
    dev.deliver([Buffer.alloc(40, 0x45), Buffer.alloc(52, 0x45)]);
    expect(rows).toEqual([
      [0, 40, 0],
      [256, 52, 0],
    ]);
  });

  it('every batch is the same reused rx batch object', () => {
    const { tun, dev } = makeTun({ vnetHdr: true });
    const batches: RxBatch[] = [];
    tun.start((b) => batches.push(b));
    dev.deliver([vnetPacket([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 40, 0x45)]);
    dev.deliver([vnetPacket([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 40, 0x45)]);
    expect(batches).toHaveLength(2);
    expect(batches[0]).toBe(batches[1]);
  });

  it('checksum known good for needs csum or data valid only', () => {
    const { tun, dev } = makeTun({ vnetHdr: true });
    const good: boolean[] = [];
    tun.start((b) => {
      for (let i = 0; i < b.count; i++) good.push(b.checksumKnownGood(i));
    });
    dev.deliver([
      vnetPacket([VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0, 0, 20, 0, 16, 0], 40, 0x45),
      vnetPacket([VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0, 0, 0, 0, 0], 40, 0x45),
      vnetPacket([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 40, 0x45),
    ]);
    expect(good).toEqual([true, true, false]);
  });

  it('read error emits ERR_TUN_IO with the errno error as cause', () => {
    const { tun, dev } = makeTun();
    const errors: SynfinError[] = [];
    tun.on('error', (e: SynfinError) => errors.push(e));
    tun.start(() => {});
    const cause = Object.assign(new Error('read fake0: File descriptor in bad state'), { code: 'EBADFD' });
    dev.rx!.onError(cause);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('ERR_TUN_IO');
    expect(errors[0]!.cause).toBe(cause);
  });

  it('start asks the device for batch size slots of slot size', () => {
    const { tun, dev } = makeTun();
    tun.start(() => {});
    expect(dev.rx).toMatchObject({ slot: 256, max: 4 });
    expect(dev.rx!.batch.length).toBe(4 * 256);
    tun.stop();
    expect(dev.rx).toBeNull();
  });
});

describe('vnet header writers (little-endian struct virtio_net_hdr)', () => {
  it('none is ten zero bytes', () => {
    const b = Buffer.alloc(12, 0xaa);
    writeVnetNone(b, 1);
    expect([...b]).toEqual([0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa]);
  });

  it('tcp csum sets needs csum start and offset 16', () => {
    const b = Buffer.alloc(10);
    writeVnetTcpCsum(b, 0, 20);
    expect([...b]).toEqual([1, 0, 0, 0, 0, 0, 20, 0, 16, 0]);
  });

  it('tcp gso v4 sets type hdr len and gso size', () => {
    const b = Buffer.alloc(10);
    writeVnetTcpGso(b, 0, false, 20, 32, 1448);
    expect([...b]).toEqual([1, VIRTIO_NET_HDR_GSO_TCPV4, 52, 0, 0xa8, 0x05, 20, 0, 16, 0]);
  });

  it('stores each 16-bit field low byte first at its offset, and nothing outside the ten bytes', () => {
    const b = Buffer.alloc(14, 0xaa);
    writeVnetHeader(b, 2, 0x01, 0x81, 0x1234, 0xffff, 0x0100, 0x00ff);
    expect([...b]).toEqual([0xaa, 0xaa, 0x01, 0x81, 0x34, 0x12, 0xff, 0xff, 0x00, 0x01, 0xff, 0x00, 0xaa, 0xaa]);
    expect([b.readUInt16LE(4), b.readUInt16LE(6), b.readUInt16LE(8), b.readUInt16LE(10)]).toEqual([0x1234, 0xffff, 0x0100, 0x00ff]);
  });

  it('tcp gso v6 uses gso type tcpv6', () => {
    const b = Buffer.alloc(10);
    writeVnetTcpGso(b, 0, true, 40, 20, 1400);
    expect([...b]).toEqual([1, VIRTIO_NET_HDR_GSO_TCPV6, 60, 0, 0x78, 0x05, 40, 0, 16, 0]);
  });
});
