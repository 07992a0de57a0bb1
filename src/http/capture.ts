/**
 * The capture API over the stack's capture ring (src/stack/capture.ts):
 *
 * - `GET /api/connections/:id/pcap`: the packets of one connection still in the ring (also a
 *   closed one), as a pcap file.
 * - `GET /api/capture.pcap?seconds=&service=`: a live capture, streamed for `seconds` (default 10);
 *   turns capture on for its duration when it was off.
 * - `GET /api/capture`: whether capture is on, its size and snaplen, records kept.
 * - `POST /api/capture` `{enabled, bufferBytes?, snaplen?}`: turns capture on or off; loopback
 *   peers only.
 *
 * The files are classic pcap (libpcap's format, microsecond timestamps) with LINKTYPE_RAW: each
 * record is an IPv4 or IPv6 packet, as tcpdump -r, tshark -r and Wireshark read it. Packets carry
 * addresses and payload: they are served only to requesters that may see addresses
 * (--api-addresses).
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CAPTURE_MAX_BYTES, CAPTURE_MIN_BYTES, MAX_CAPTURE_SNAPLEN, type CaptureControl, type CaptureRecord, type CaptureRing } from '../stack/capture.js';
import { parseByteSize } from '../tcp/memory-budget.js';
import { isLoopbackPeer, showsAddresses, type ApiAddressMode } from './app.js';

export const PCAP_CONTENT_TYPE = 'application/vnd.tcpdump.pcap';
/** libpcap's magic (microsecond timestamps), written in our byte order; readers detect the order. */
const PCAP_MAGIC = 0xa1b2c3d4;
/** LINKTYPE_RAW: the packet begins with an IPv4 or IPv6 header (tcpdump.org/linktypes.html). */
export const LINKTYPE_RAW = 101;
const PCAP_HEADER_LEN = 24;
const PCAP_RECORD_HEADER_LEN = 16;
/** The snapshot length the file header announces: no record is longer than an IP packet. */
const PCAP_SNAPLEN = 65535;

export const DEFAULT_LIVE_SECONDS = 10;
export const MAX_LIVE_SECONDS = 300;
/** How often a live capture reads what the ring got since its last read. */
const LIVE_POLL_MS = 100;
/** A live reader that falls this far behind loses records rather than grow our memory. */
const LIVE_QUEUE_BYTES = 4 * 1024 * 1024;

/** The pcap file header: version 2.4, LINKTYPE_RAW. */
export function pcapFileHeader(): Buffer {
  const b = Buffer.alloc(PCAP_HEADER_LEN);
  b.writeUInt32LE(PCAP_MAGIC, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeInt32LE(0, 8);
  b.writeUInt32LE(0, 12);
  b.writeUInt32LE(PCAP_SNAPLEN, 16);
  b.writeUInt32LE(LINKTYPE_RAW, 20);
  return b;
}

/** Bytes a record takes in a pcap file. */
export function pcapRecordLength(rec: CaptureRecord): number {
  return PCAP_RECORD_HEADER_LEN + rec.data.length;
}

/** Write one record (header and captured bytes) at `off`; returns the offset after it. */
export function writePcapRecord(dst: Buffer, off: number, rec: CaptureRecord): number {
  const sec = Math.floor(rec.timeUs / 1e6);
  dst.writeUInt32LE(sec, off);
  dst.writeUInt32LE(rec.timeUs - sec * 1e6, off + 4);
  dst.writeUInt32LE(rec.data.length, off + 8);
  dst.writeUInt32LE(rec.origLen, off + 12);
  rec.data.copy(dst, off + PCAP_RECORD_HEADER_LEN);
  return off + PCAP_RECORD_HEADER_LEN + rec.data.length;
}

/**
 * Records examined per synchronous slice of a connection's pcap: the walk visits the whole ring
 * (a 64 MiB ring holds up to ~800,000 packets), with a turn of the event loop between slices so
 * the packets keep moving meanwhile.
 */
const PCAP_SLICE_RECORDS = 20_000;

/**
 * The packets of connection `connId` in the ring as a whole pcap file, oldest first: those kept
 * when the walk reaches them (the ring goes on filling during the walk). Stops when `current()`
 * no longer returns this ring (capture was turned off or resized).
 */
export async function pcapOf(ring: CaptureRing, connId: number, current: () => CaptureRing | null = () => ring): Promise<{ file: Buffer; packets: number }> {
  const parts: Buffer[] = [pcapFileHeader()];
  const collect = (rec: CaptureRecord): void => {
    const b = Buffer.allocUnsafe(pcapRecordLength(rec));
    writePcapRecord(b, 0, rec);
    parts.push(b);
  };
  // Up to what was written when asked: a connection that is still sending does not keep the walk going.
  const stop = ring.nextNumber;
  let next = ring.firstNumber;
  while (next < stop && current() === ring) {
    next = ring.forEach(next, collect, connId, PCAP_SLICE_RECORDS);
    if (next < stop) await new Promise((resolve) => setImmediate(resolve));
  }
  return { file: Buffer.concat(parts), packets: parts.length - 1 };
}

export interface CaptureRoutesOptions {
  control: CaptureControl;
  /** Who sees connection addresses (--api-addresses): the packets carry them, so the same rule applies. */
  apiAddresses?: ApiAddressMode;
  /**
   * The service a connection's destination belongs to (--service), for `?service=` of the live
   * capture; without it that filter is refused.
   */
  serviceOfConn?: (connId: number) => string | null;
}

export const captureBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['enabled'],
  properties: {
    enabled: { type: 'boolean' },
    bufferBytes: { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', minLength: 1, maxLength: 32 }] },
    snaplen: { type: 'integer', minimum: 0, maximum: MAX_CAPTURE_SNAPLEN },
  },
} as const;

export const liveQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    seconds: { type: 'number', exclusiveMinimum: 0, maximum: MAX_LIVE_SECONDS },
    service: { type: 'string', minLength: 1, maxLength: 256 },
  },
} as const;

const idParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1 } },
} as const;

export function status(control: CaptureControl): Record<string, unknown> {
  const ring = control.ring;
  return {
    enabled: control.enabled,
    active: ring !== null,
    bufferBytes: ring?.size ?? (control.enabled ? control.bufferBytes : 0),
    snaplen: ring?.snaplen ?? control.snaplen,
    records: ring?.records ?? 0,
    overwritten: ring?.overwritten ?? 0,
  };
}

/** The 400 answer to a POST /api/capture whose bufferBytes is not a size synfin accepts. */
export const BUFFER_BYTES_ERROR = {
  error: `body/bufferBytes must be a size from ${CAPTURE_MIN_BYTES} to ${CAPTURE_MAX_BYTES} bytes (e.g. 64MiB)`,
  statusCode: 400,
} as const;

/**
 * A POST /api/capture body's bufferBytes (a number of bytes or a size such as "64MiB") as bytes:
 * undefined when absent, null when out of range or not a size (answer BUFFER_BYTES_ERROR).
 */
export function captureBufferBytes(raw: number | string | undefined): number | undefined | null {
  if (raw === undefined) return undefined;
  const bytes = typeof raw === 'number' ? raw : parseByteSize(raw);
  return Number.isInteger(bytes) && bytes >= CAPTURE_MIN_BYTES && bytes <= CAPTURE_MAX_BYTES ? bytes : null;
}

function refuseWithoutAddresses(mode: ApiAddressMode, req: FastifyRequest, reply: FastifyReply): boolean {
  if (showsAddresses(mode, req)) return false;
  void reply.status(403).send({ error: 'packets carry addresses, which are not shown to this client (--api-addresses)', statusCode: 403 });
  return true;
}

/** A plugin for `build({ plugins: [captureRoutes({ control })] })`. */
export function captureRoutes(opts: CaptureRoutesOptions): (app: FastifyInstance) => void {
  const control = opts.control;
  const mode = opts.apiAddresses ?? 'loopback';
  return (app) => {
    // Live captures end with the server: a shutdown does not wait out their seconds.
    const live = new Set<() => void>();
    app.addHook('onClose', async () => {
      for (const end of [...live]) end();
    });
    app.get('/api/capture', async () => status(control));

    app.post<{ Body: { enabled: boolean; bufferBytes?: number | string; snaplen?: number } }>(
      '/api/capture',
      { schema: { body: captureBodySchema } },
      async (req, reply) => {
        // Who may change what synfin keeps in memory: only a local administrator. The TCP peer
        // decides, never a header.
        if (!isLoopbackPeer(req.raw.socket.remoteAddress)) {
          return reply.status(403).send({ error: 'POST /api/capture is accepted from loopback only', statusCode: 403 });
        }
        const { enabled, snaplen } = req.body;
        const bufferBytes = captureBufferBytes(req.body.bufferBytes);
        if (bufferBytes === null) return reply.status(400).send(BUFFER_BYTES_ERROR);
        control.configure({ enabled, bufferBytes, snaplen });
        return status(control);
      },
    );

    app.get<{ Params: { id: number } }>('/api/connections/:id/pcap', { schema: { params: idParamsSchema } }, async (req, reply) => {
      if (refuseWithoutAddresses(mode, req, reply)) return reply;
      const ring = control.ring;
      if (ring === null) {
        return reply.status(409).send({ error: 'capture is off (--capture-buffer, or POST /api/capture {"enabled":true})', statusCode: 409 });
      }
      const id = req.params.id;
      const { file, packets } = await pcapOf(ring, id, () => control.ring);
      if (packets === 0) {
        return reply.status(404).send({ error: `no packets of connection ${id} in the capture ring`, statusCode: 404 });
      }
      return reply
        .header('content-type', PCAP_CONTENT_TYPE)
        .header('content-disposition', `attachment; filename="synfin-connection-${id}.pcap"`)
        .send(file);
    });

    app.get<{ Querystring: { seconds?: number; service?: string } }>(
      '/api/capture.pcap',
      { schema: { querystring: liveQuerySchema } },
      (req, reply) => {
        if (refuseWithoutAddresses(mode, req, reply)) return;
        const service = req.query.service;
        const serviceOf = opts.serviceOfConn;
        if (service !== undefined && serviceOf === undefined) {
          void reply.status(400).send({ error: 'querystring/service: no services are named (--service)', statusCode: 400 });
          return;
        }
        streamLive(control, req, reply, (req.query.seconds ?? DEFAULT_LIVE_SECONDS) * 1000, service, serviceOf, live);
      },
    );
  };
}

/**
 * What the ring gets from one moment on, read piece by piece (a live capture's source): each
 * `take()` returns the records written since the last one, as pcap records, oldest first. A record
 * overwritten before it was taken is lost. With a service filter, each connection's service is
 * asked once per tap. Capture stays on while the tap is open (`close()` releases it).
 */
export class LiveTap {
  private ring: CaptureRing;
  private next: number;
  private readonly matches = new Map<number, boolean>();
  private closed = false;

  constructor(
    private readonly control: CaptureControl,
    private readonly service: string | undefined,
    private readonly serviceOf: ((connId: number) => string | null) | undefined,
  ) {
    this.ring = control.acquireLive();
    this.next = this.ring.nextNumber;
  }

  /** The records since the last take (null: none). `skip`: drop them instead (a reader that fell behind). */
  take(skip = false): Buffer | null {
    const now = this.control.ring;
    if (this.closed || now === null) return null;
    if (now !== this.ring) {
      // Capture was reconfigured (a new ring): go on from its start.
      this.ring = now;
      this.next = 0;
    }
    if (skip) {
      this.next = this.ring.nextNumber;
      return null;
    }
    const parts: Buffer[] = [];
    this.next = this.ring.forEach(this.next, (rec) => {
      if (!this.keep(rec)) return;
      const b = Buffer.allocUnsafe(pcapRecordLength(rec));
      writePcapRecord(b, 0, rec);
      parts.push(b);
    });
    return parts.length === 0 ? null : Buffer.concat(parts);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.control.releaseLive();
  }

  private keep(rec: CaptureRecord): boolean {
    if (this.service === undefined) return true;
    if (rec.connId === 0) return false;
    let m = this.matches.get(rec.connId);
    if (m === undefined) {
      m = this.serviceOf!(rec.connId) === this.service;
      this.matches.set(rec.connId, m);
    }
    return m;
  }
}

/**
 * Several runs of pcap records (each oldest first, e.g. one per --workers worker) as one run in
 * time order: a k-way merge on the records' timestamps, records of one run keeping their order.
 */
export function mergePcapRecords(runs: readonly Uint8Array[]): Buffer {
  const bufs = runs.filter((r) => r.byteLength > 0).map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength));
  if (bufs.length <= 1) return bufs[0] ?? Buffer.alloc(0);
  const out = Buffer.allocUnsafe(bufs.reduce((a, b) => a + b.length, 0));
  const at = new Array<number>(bufs.length).fill(0);
  let w = 0;
  for (;;) {
    let best = -1;
    let bestTime = Infinity;
    for (let i = 0; i < bufs.length; i++) {
      if (at[i]! >= bufs[i]!.length) continue;
      const t = pcapTimeUs(bufs[i]!, at[i]!);
      if (t < bestTime) {
        best = i;
        bestTime = t;
      }
    }
    if (best < 0) return out;
    const b = bufs[best]!;
    const len = PCAP_RECORD_HEADER_LEN + b.readUInt32LE(at[best]! + 8);
    w += b.copy(out, w, at[best]!, at[best]! + len);
    at[best]! += len;
  }
}

const pcapTimeUs = (b: Buffer, off: number): number => b.readUInt32LE(off) * 1e6 + b.readUInt32LE(off + 4);

/**
 * Several workers' live taps written as one run in time order across polls. A poll takes each
 * worker's ring at a slightly different instant, so a record a worker gives in the next poll can be
 * older than one another worker gave in this one (the merge of one poll alone is not enough). What
 * a worker takes later is never older than its own take instant, so a record goes out only once it
 * is no newer than every answering worker's instant; the rest wait for the next poll, or the last.
 * What waits is the few milliseconds between the workers' takes, not a growing backlog.
 */
export class LiveMerge {
  private held: Buffer = Buffer.alloc(0);

  /** This poll's answers (null: a worker being replaced, which gives nothing); `last`: write all. */
  next(answers: ReadonlyArray<{ records: Uint8Array; takenAtUs: number } | null>, last: boolean): Buffer | null {
    let upTo = Infinity;
    const runs: Uint8Array[] = [this.held];
    for (const a of answers) {
      if (a === null) continue;
      runs.push(a.records);
      upTo = Math.min(upTo, a.takenAtUs);
    }
    // No worker answered: nothing says how far the others have got, so everything waits.
    if (upTo === Infinity) upTo = -Infinity;
    const merged = mergePcapRecords(runs);
    let cut = merged.length;
    if (!last) {
      for (let off = 0; off < merged.length; off += PCAP_RECORD_HEADER_LEN + merged.readUInt32LE(off + 8)) {
        if (pcapTimeUs(merged, off) > upTo) {
          cut = off;
          break;
        }
      }
    }
    this.held = cut === merged.length ? Buffer.alloc(0) : Buffer.from(merged.subarray(cut));
    return cut === 0 ? null : merged.subarray(0, cut);
  }

  /** Forget what waits (the reader fell behind and this poll's records are dropped). */
  drop(): void {
    this.held = Buffer.alloc(0);
  }
}

/** The live capture's answer: headers, then the pcap file header. The reply is taken over (hijacked). */
export function openLiveResponse(reply: FastifyReply): ServerResponse {
  const res = reply.raw;
  reply.hijack();
  res.writeHead(200, {
    'content-type': PCAP_CONTENT_TYPE,
    'content-disposition': 'attachment; filename="synfin-capture.pcap"',
    'cache-control': 'no-store',
  });
  res.write(pcapFileHeader());
  return res;
}

/**
 * Run a live capture on `res` for `ms`: every LIVE_POLL_MS, `poll(skip)` returns what came since
 * (skip: the reader is more than LIVE_QUEUE_BYTES behind, drop it rather than grow our memory).
 * Ends at `ms`, when the client goes, or when the server closes (`live`).
 */
export function runLive(
  req: FastifyRequest,
  res: ServerResponse,
  ms: number,
  live: Set<() => void>,
  poll: (skip: boolean, last: boolean) => Buffer | null | Promise<Buffer | null>,
  release: () => void,
): void {
  let done = false;
  let polling: Promise<void> | null = null;
  const drain = async (last = false): Promise<void> => {
    const got = await poll(res.writableLength > LIVE_QUEUE_BYTES, last);
    if (got !== null && !res.destroyed) res.write(got);
  };
  const tick = (): void => {
    if (polling !== null) return; // the previous poll (a worker's answer) is still on its way
    polling = drain().finally(() => (polling = null));
  };
  const timer = setInterval(tick, LIVE_POLL_MS);
  const finish = (): void => {
    if (done) return;
    done = true;
    clearInterval(timer);
    clearTimeout(stopTimer);
    live.delete(end);
    release();
  };
  const end = (): void => {
    if (done) return;
    clearInterval(timer);
    // The last records, after any poll still on its way.
    void (polling ?? Promise.resolve())
      .then(() => drain(true))
      .catch(() => undefined)
      .finally(() => {
        finish();
        res.end();
      });
  };
  live.add(end);
  const stopTimer = setTimeout(end, ms);
  req.raw.on('close', finish);
  res.on('close', finish);
}

/** A live capture of this stack's ring (one thread): a tap read every LIVE_POLL_MS. */
function streamLive(
  control: CaptureControl,
  req: FastifyRequest,
  reply: FastifyReply,
  ms: number,
  service: string | undefined,
  serviceOf: ((connId: number) => string | null) | undefined,
  live: Set<() => void>,
): void {
  const tap = new LiveTap(control, service, serviceOf);
  const res = openLiveResponse(reply);
  runLive(req, res, ms, live, (skip) => tap.take(skip), () => tap.close());
}
