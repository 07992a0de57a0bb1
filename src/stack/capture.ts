/**
 * The packet capture ring (--capture-buffer, --capture-snaplen): the app leg's packets, both
 * directions, as the stack reads them from the link and writes them to it, kept in one
 * preallocated ArrayBuffer. Each record holds the time (µs), the direction, the connection id, the
 * original length and the first bytes of the packet: the IP and TCP headers plus up to `snaplen`
 * bytes of payload. Writing a record allocates nothing; when the ring is full the oldest records
 * are overwritten. With capture off there is no ring at all (the stack holds null).
 *
 * Records are variable-length and 4-byte aligned: a 28-byte header of seven u32 words, then the
 * bytes. A record that does not fit before the end of the buffer goes to its start, and a zero
 * length word where it would have gone tells readers to wrap.
 *
 * Readers (the HTTP API) walk the ring between packets, on the same thread: a per-connection
 * extraction, or a live reader that follows the write position by record number.
 */
import { ConfigError } from '../errors.js';

/** The packet came from the app (read from the link). */
export const CAPTURE_IN = 0;
/** The packet went to the app (written to the link). */
export const CAPTURE_OUT = 1;

/**
 * Bytes of a record's header, u32 words: length, seconds, microseconds, connection id, original
 * length, captured length | direction << 24, and the record's number (mod 2^32).
 */
export const CAPTURE_RECORD_HEADER = 28;
const W_LEN = 0;
const W_SEC = 1;
const W_USEC = 2;
const W_CONN = 3;
const W_ORIG = 4;
const W_CAP = 5;
const W_NUM = 6;

/** Smallest and largest ring: a record of a full-size packet must fit several times over. */
export const CAPTURE_MIN_BYTES = 256 * 1024;
export const CAPTURE_MAX_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_CAPTURE_SNAPLEN = 128;
export const MAX_CAPTURE_SNAPLEN = 65535;

/** One record as a reader sees it (`data` is a view into the ring: valid until the next write). */
export interface CaptureRecord {
  /** Microseconds since the epoch. */
  timeUs: number;
  direction: typeof CAPTURE_IN | typeof CAPTURE_OUT;
  /** The connection the packet belongs to; 0 when none (a stray segment, a SYN answered with a cookie). */
  connId: number;
  /** Length of the packet on the link. */
  origLen: number;
  data: Buffer;
}

/** Word copies (copyIn) assume the platform stores a u32's low byte first. */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
/**
 * Copies up to this long go word by word (no allocation: Buffer#copy of part of a Buffer makes a
 * view object per call); longer ones, which only a large --capture-snaplen makes, use Buffer#copy.
 */
const WORD_COPY_MAX = 256;

/**
 * Wall-clock microseconds without a Date or a BigInt per packet: the clock of every record's
 * timestamp in this thread (monotonic within the thread; a worker's origin is its own).
 */
const TIME_ORIGIN_US = performance.timeOrigin * 1000;
export function captureClockUs(): number {
  return Math.floor(TIME_ORIGIN_US + performance.now() * 1000);
}

/**
 * How many bytes of this IP packet to keep: its IP and TCP headers (for other protocols, the IP
 * header and 8 octets, what ICMP quotes) plus up to `snaplen` bytes after them.
 */
export function captureLength(buf: Buffer, off: number, len: number, snaplen: number): number {
  if (len < 1) return 0;
  const version = buf[off]! >> 4;
  let hdr: number;
  let proto: number;
  if (version === 4 && len >= 20) {
    hdr = (buf[off]! & 0x0f) * 4;
    proto = buf[off + 9]!;
  } else if (version === 6 && len >= 40) {
    hdr = 40;
    proto = buf[off + 6]!;
  } else {
    return Math.min(len, 64 + snaplen);
  }
  if (proto === 6 && len >= hdr + 20) hdr += (buf[off + hdr + 12]! >> 4) * 4;
  else hdr += 8;
  return Math.min(len, hdr + snaplen);
}

export class CaptureRing {
  readonly size: number;
  readonly snaplen: number;
  /** The ring's memory, as bytes and as the u32 words of record headers. */
  readonly bytes: Buffer;
  private readonly words: Uint32Array;
  /** Offset of the oldest record (or of a wrap marker in front of it). */
  private head = 0;
  /** Offset where the next record goes. */
  private tail = 0;
  private count = 0;
  /** Number of the oldest record kept; records are numbered from 0 in the order written. */
  private first = 0;
  /** Records overwritten before anyone read them out of the ring (all records that left it). */
  overwritten = 0;
  /** Offset of the newest record (valid while count > 0). */
  private lastAt = 0;
  /** Where the last forEach stopped: the record number after it, and the offset that record goes to. */
  private resumeNumber = -1;
  private resumeAt = 0;
  /** One record object lent to forEach's visitor (valid during the call). */
  private readonly lent: CaptureRecord = { timeUs: 0, direction: CAPTURE_IN, connId: 0, origLen: 0, data: Buffer.alloc(0) };

  constructor(bufferBytes: number, snaplen: number = DEFAULT_CAPTURE_SNAPLEN) {
    if (!Number.isInteger(bufferBytes) || bufferBytes < CAPTURE_MIN_BYTES || bufferBytes > CAPTURE_MAX_BYTES) {
      throw new ConfigError(`--capture-buffer: ${bufferBytes} is out of range (0 for off, or ${CAPTURE_MIN_BYTES}-${CAPTURE_MAX_BYTES} bytes)`);
    }
    if (!Number.isInteger(snaplen) || snaplen < 0 || snaplen > MAX_CAPTURE_SNAPLEN) {
      throw new ConfigError(`--capture-snaplen: ${snaplen} is out of range (0-${MAX_CAPTURE_SNAPLEN} bytes)`);
    }
    this.size = bufferBytes & ~3;
    this.snaplen = snaplen;
    const ab = new ArrayBuffer(this.size);
    this.bytes = Buffer.from(ab);
    this.words = new Uint32Array(ab);
  }

  /** Records in the ring now. */
  get records(): number {
    return this.count;
  }
  /** Number the next record will get (records written so far). */
  get nextNumber(): number {
    return this.first + this.count;
  }
  /** Number of the newest record (-1 when none was written). */
  get lastNumber(): number {
    return this.first + this.count - 1;
  }

  /**
   * Make room for a record of `capLen` bytes and write its header; returns the offset in `bytes`
   * where the caller copies the packet's first `capLen` bytes.
   */
  reserve(direction: number, connId: number, origLen: number, capLen: number): number {
    const need = (CAPTURE_RECORD_HEADER + capLen + 3) & ~3;
    let at = this.tail;
    if (at + need > this.size) {
      // The records between here and the end are the oldest: they go first, then a marker sends
      // readers to the start.
      while (this.count > 0 && this.head >= at) this.evictHead();
      if (at < this.size) this.words[at >> 2] = 0;
      at = 0;
    }
    while (this.count > 0 && this.head >= at && this.head < at + need) this.evictHead();
    if (this.count === 0) this.head = at;
    const w = at >> 2;
    const words = this.words;
    const t = captureClockUs();
    const sec = Math.floor(t / 1e6);
    words[w + W_LEN] = need;
    words[w + W_SEC] = sec;
    words[w + W_USEC] = t - sec * 1e6;
    words[w + W_CONN] = connId;
    words[w + W_ORIG] = origLen;
    words[w + W_CAP] = capLen | (direction << 24);
    words[w + W_NUM] = this.first + this.count;
    this.lastAt = at;
    this.count++;
    this.tail = at + need;
    return at + CAPTURE_RECORD_HEADER;
  }

  /** Copy a packet read from the link into a new record. Returns the record's number. */
  recordIn(buf: Buffer, off: number, len: number): number {
    const capLen = captureLength(buf, off, len, this.snaplen);
    const at = this.reserve(CAPTURE_IN, 0, len, capLen);
    this.copyIn(at, buf, off, capLen);
    return this.lastNumber;
  }

  /** Copy `src[off, off+len)` to `bytes[at]` (`at` from reserve: 4-byte aligned), allocating nothing for short copies. */
  copyIn(at: number, src: Uint8Array, off: number, len: number): void {
    if (len > WORD_COPY_MAX || !LITTLE_ENDIAN) {
      this.bytes.set(src.subarray(off, off + len), at);
      return;
    }
    const words = this.words;
    const end = off + len;
    let w = at >> 2;
    let i = off;
    for (; i + 4 <= end; i += 4) words[w++] = src[i]! | (src[i + 1]! << 8) | (src[i + 2]! << 16) | (src[i + 3]! << 24);
    const bytes = this.bytes;
    for (let o = w << 2; i < end; i++) bytes[o++] = src[i]!;
  }

  /** Set the connection of record `number` (the stack learns it after demultiplexing), unless it was overwritten since. */
  tagConnection(number: number, offset: number, connId: number): void {
    if (number >= this.first && number < this.first + this.count) this.words[(offset >> 2) + W_CONN] = connId;
  }
  /** Offset of the newest record, for tagConnection. */
  get lastOffset(): number {
    return this.lastAt;
  }

  private evictHead(): void {
    const h = this.head;
    const len = h + CAPTURE_RECORD_HEADER <= this.size ? this.words[h >> 2]! : 0;
    if (len === 0) {
      this.head = 0;
      return;
    }
    this.head = h + len;
    this.count--;
    this.first++;
    this.overwritten++;
  }

  /** Offset of the record that starts at or after `at` (following a wrap marker). */
  private follow(at: number): number {
    if (at + CAPTURE_RECORD_HEADER > this.size || this.words[at >> 2] === 0) return 0;
    return at;
  }

  /**
   * Visit the records from number `from` on (clamped to the oldest kept), oldest first, only those
   * of connection `connId` when it is given, examining at most `maxExamined` of them; returns the
   * number after the last one examined. `from` at or past nextNumber visits nothing. A reader that
   * goes on from the number returned (a live capture, a walk in slices) starts where the last
   * call stopped, not at the oldest record. The record object and its `data` view are lent for
   * the call.
   */
  forEach(from: number, visit: (rec: CaptureRecord) => void, connId = -1, maxExamined = Infinity): number {
    const end = this.first + this.count;
    if (from >= end) return from;
    const words = this.words;
    let n: number;
    let at: number;
    const resume = this.resumeNumber === from && from >= this.first ? this.follow(this.resumeAt) : -1;
    if (resume >= 0 && words[(resume >> 2) + W_NUM] === from >>> 0) {
      n = from;
      at = resume;
    } else {
      n = this.first;
      at = this.follow(this.head);
    }
    const rec = this.lent;
    let examined = 0;
    for (;;) {
      const w = at >> 2;
      if (n >= from) examined++;
      if (n >= from && (connId < 0 || words[w + W_CONN] === connId)) {
        const cap = words[w + W_CAP]!;
        const capLen = cap & 0xffffff;
        rec.timeUs = words[w + W_SEC]! * 1e6 + words[w + W_USEC]!;
        rec.direction = (cap >>> 24) as typeof CAPTURE_IN | typeof CAPTURE_OUT;
        rec.connId = words[w + W_CONN]!;
        rec.origLen = words[w + W_ORIG]!;
        rec.data = this.bytes.subarray(at + CAPTURE_RECORD_HEADER, at + CAPTURE_RECORD_HEADER + capLen);
        visit(rec);
      }
      n++;
      at += words[w + W_LEN]!;
      if (n >= end || examined >= maxExamined) break;
      at = this.follow(at);
    }
    this.resumeNumber = n;
    this.resumeAt = at;
    return n;
  }

  /** Whether record number `n` is still in the ring. */
  holds(n: number): boolean {
    return n >= this.first && n < this.first + this.count;
  }
  /** Number of the oldest record kept. */
  get firstNumber(): number {
    return this.first;
  }
}

/**
 * Turns capture on and off at runtime (--capture-buffer, POST /api/capture, a live capture), and
 * hands the ring to whatever records into it (the stack). Off means no ring: its memory is freed.
 */
export interface CaptureSink {
  setCapture(ring: CaptureRing | null): void;
}

export interface CaptureSettings {
  bufferBytes: number;
  snaplen: number;
}

/** Ring a live capture uses when capture was off: it is freed when the capture ends. */
export const LIVE_CAPTURE_BYTES = 8 * 1024 * 1024;

export class CaptureControl {
  private current: CaptureRing | null = null;
  /** Turned on by --capture-buffer or POST /api/capture (not by a live capture alone). */
  private wanted = false;
  private liveReaders = 0;
  private settings: CaptureSettings;

  constructor(
    private readonly sink: CaptureSink,
    settings: CaptureSettings,
  ) {
    this.settings = { ...settings };
    if (settings.bufferBytes > 0) this.configure({ enabled: true });
  }

  get ring(): CaptureRing | null {
    return this.current;
  }
  get enabled(): boolean {
    return this.wanted;
  }
  get bufferBytes(): number {
    return this.settings.bufferBytes;
  }
  get snaplen(): number {
    return this.settings.snaplen;
  }

  /**
   * Turn capture on (a new ring when the size or snaplen changed: the old records go) or off (the
   * ring is freed, unless a live capture still reads it).
   */
  configure(req: { enabled: boolean; bufferBytes?: number; snaplen?: number }): void {
    const bufferBytes = req.bufferBytes ?? (this.settings.bufferBytes > 0 ? this.settings.bufferBytes : 64 * 1024 * 1024);
    const snaplen = req.snaplen ?? this.settings.snaplen;
    if (req.enabled) {
      const cur = this.current;
      if (cur === null || cur.size !== (bufferBytes & ~3) || cur.snaplen !== snaplen) {
        this.install(new CaptureRing(bufferBytes, snaplen));
      }
      this.settings = { bufferBytes, snaplen };
      this.wanted = true;
    } else {
      this.wanted = false;
      if (this.liveReaders === 0) this.install(null);
    }
  }

  /** A live capture starts: capture goes on for it (with a small ring if it was off). */
  acquireLive(): CaptureRing {
    this.liveReaders++;
    if (this.current === null) this.install(new CaptureRing(LIVE_CAPTURE_BYTES, this.settings.snaplen));
    return this.current!;
  }

  releaseLive(): void {
    this.liveReaders--;
    if (this.liveReaders === 0 && !this.wanted) this.install(null);
  }

  private install(ring: CaptureRing | null): void {
    this.current = ring;
    this.sink.setCapture(ring);
  }
}
