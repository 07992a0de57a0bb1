/**
 * The boundary between the packet codecs (src/wire) and the pure TCP state machine (src/tcp).
 *
 * The stack parses each incoming packet into ONE reused `Segment` object and hands it to
 * `TcpConn.process(seg, now)`. The connection must not keep a reference to the segment or its
 * `payload` after `process` returns: the payload is a view into the TUN read batch, which is
 * overwritten by the next read. Anything kept is copied.
 *
 * Outgoing segments are described by ONE reused `OutSegment` per dispatch call. Its payload is
 * not a Buffer but a range of the connection's send buffer (`payloadOffset` bytes after SND.UNA,
 * `payloadLength` bytes long), which the stack copies straight into the TUN write batch with
 * `conn.copyPayload(...)`: one copy, no intermediate Buffer.
 */

/** TCP header flag bits (RFC 9293 §3.1, RFC 3168 for ECE/CWR). */
export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** Maximum number of SACK blocks an option can carry (RFC 2018 §3: at most 4 in 40 bytes). */
export const MAX_SACK_BLOCKS = 4;

/** Parsed TCP options. "Absent" is -1 for numeric options so the object never changes shape. */
export class TcpOptions {
  /** Maximum segment size (RFC 9293 §3.7.1), -1 when absent. */
  mss = -1;
  /** Window scale shift count (RFC 7323 §2), -1 when absent. */
  wscale = -1;
  /** SACK-permitted (RFC 2018 §2). */
  sackPermitted = false;
  /** Timestamps option present (RFC 7323 §3). */
  tsPresent = false;
  tsVal = 0;
  tsEcr = 0;
  /** Number of SACK blocks in `sackBlocks` (RFC 2018 §3). */
  sackCount = 0;
  /** SACK blocks as [left0, right0, left1, right1, ...], sequence numbers. */
  readonly sackBlocks = new Uint32Array(MAX_SACK_BLOCKS * 2);

  clear(): void {
    this.mss = -1;
    this.wscale = -1;
    this.sackPermitted = false;
    this.tsPresent = false;
    this.tsVal = 0;
    this.tsEcr = 0;
    this.sackCount = 0;
  }
}

const EMPTY = Buffer.alloc(0);

/** One incoming TCP segment, already checksum-verified and parsed by the stack. */
export class Segment {
  seq = 0;
  ack = 0;
  /** TcpFlag bits. */
  flags = 0;
  /** The window field exactly as received (not yet scaled). */
  window = 0;
  urgent = 0;
  readonly options = new TcpOptions();
  /** Payload view; valid only during `process()`. */
  payload: Buffer = EMPTY;

  clear(): void {
    this.seq = 0;
    this.ack = 0;
    this.flags = 0;
    this.window = 0;
    this.urgent = 0;
    this.options.clear();
    this.payload = EMPTY;
  }

  /** SEG.LEN of RFC 9293 §3.4: payload octets plus one for SYN and one for FIN. */
  get segLen(): number {
    return this.payload.length + (this.flags & TcpFlag.SYN ? 1 : 0) + (this.flags & TcpFlag.FIN ? 1 : 0);
  }
}

/** One outgoing TCP segment, described for the stack to serialize. */
export class OutSegment {
  seq = 0;
  ack = 0;
  flags = 0;
  /** Window field to put on the wire (already right-shifted by our scale). */
  window = 0;
  readonly options = new TcpOptions();
  /** Offset of the payload in the send buffer, counted from SND.UNA. */
  payloadOffset = 0;
  payloadLength = 0;
  /**
   * Segmentation size for large segments: when payloadLength > gsoSize > 0 the stack may hand
   * the whole segment to the kernel with a vnet GSO header (TSO), or cut it into gsoSize pieces.
   */
  gsoSize = 0;

  clear(): void {
    this.seq = 0;
    this.ack = 0;
    this.flags = 0;
    this.window = 0;
    this.options.clear();
    this.payloadOffset = 0;
    this.payloadLength = 0;
    this.gsoSize = 0;
  }
}
