/**
 * Serializes outgoing segments straight into the link's transmit slots: the vnet header (when the
 * device has one), the IP and TCP headers, then the payload: large ones attached as views of the
 * connection's send buffer (the device writes them with the headers in one writev), small ones
 * copied once into the slot. With a vnet header the TCP checksum is left to the kernel (CHECKSUM_PARTIAL), and a
 * segment longer than its gsoSize goes as one TSO super-segment that the kernel cuts up, or
 * delivers whole to the local socket: no per-1500-byte work on our side.
 */
import { OutSegment, TcpFlag } from '../wire/segment.js';
import { IPV4_HEADER_LEN, IPV6_HEADER_LEN, TCP_HEADER_LEN } from '../wire/field.js';
import { Icmpv4UnreachableCode, Icmpv6UnreachableCode } from '../wire/icmp.js';
import { finishTcpChecksum, writeIcmpUnreachable, writeTcpPacket } from '../wire/packet.js';
import { VNET_HDR_LEN, writeVnetNone, writeVnetTcpCsum, writeVnetTcpGso } from '../wire/vnet.js';
import type { FlowTuple } from './flow-table.js';
import type { LinkTx } from '../wire/link.js';
import { CAPTURE_OUT, type CaptureRing } from './capture.js';

/** What the writer needs of a connection: its send-buffer bytes. */
export interface PayloadSource {
  copyPayload(dst: Buffer, dstOffset: number, offsetFromUna: number, len: number): void;
  /** The same bytes as views attached to a transmit slot (LinkTx.txAttach); false if they cannot be. */
  attachPayload?(sink: LinkTx, slot: number, offsetFromUna: number, len: number, maxViews: number): boolean;
}

/**
 * Payloads from this size on go to the device as views of the send buffer (one writev with the
 * headers) instead of being copied into the transmit slot: copying a 64 KB segment costs more
 * than the iovec (BENCHMARKS.md). Smaller ones are copied: cheaper than another iovec.
 */
const ZERO_COPY_MIN_BYTES = 2048;

export class PacketWriter {
  /** Segments and bytes handed to the link (for metrics). */
  segmentsOut = 0;
  bytesOut = 0;
  private readonly scratch = Buffer.alloc(IPV6_HEADER_LEN + TCP_HEADER_LEN);
  private readonly scratchSeg = new OutSegment();
  /** The capture ring (--capture-buffer) every written packet is copied into, or null when capture is off. */
  capture: CaptureRing | null = null;

  constructor(private readonly link: LinkTx) {}

  /**
   * Write one segment from `src`:`srcPort` (our side) to `dst`:`dstPort`. Returns false when the
   * link's ring is full (nothing written; the caller retries after the drain). `connId` names the
   * connection in the capture ring (0: none).
   */
  writeSegment(
    family: 4 | 6,
    src: Uint32Array,
    srcPort: number,
    dst: Uint32Array,
    dstPort: number,
    out: OutSegment,
    payload: PayloadSource | null,
    connId = 0,
  ): boolean {
    const link = this.link;
    const slot = link.txReserve();
    if (slot < 0) return false;
    const buf = link.txBuffer;
    const vnet = link.vnetHdr;
    const ipOff = vnet ? slot + VNET_HDR_LEN : slot;
    const len = payload === null ? 0 : out.payloadLength;
    const hdrLen = writeTcpPacket(buf, ipOff, family, src, dst, srcPort, dstPort, out, len);
    // Views need the kernel to finish the checksum (vnet header): without one we sum the payload
    // here, from the slot.
    const attached =
      vnet &&
      len >= ZERO_COPY_MIN_BYTES &&
      link.txAttach !== undefined &&
      payload!.attachPayload !== undefined &&
      payload!.attachPayload(link, slot, out.payloadOffset, len, link.txMaxViews ?? 0);
    if (len > 0 && !attached) payload!.copyPayload(buf, ipOff + hdrLen, out.payloadOffset, len);
    if (vnet) {
      const ipHl = family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
      if (out.gsoSize > 0 && len > out.gsoSize) {
        writeVnetTcpGso(buf, slot, family === 6, ipHl, hdrLen - ipHl, out.gsoSize);
      } else {
        writeVnetTcpCsum(buf, slot, ipHl);
      }
      // The kernel completes the checksum from the pseudo-header sum writeTcpPacket left.
    } else {
      finishTcpChecksum(buf, ipOff, 'full');
    }
    if (this.capture !== null) this.captureOut(this.capture, buf, ipOff, hdrLen, len, attached, payload, out.payloadOffset, connId);
    const total = (vnet ? VNET_HDR_LEN : 0) + hdrLen + len;
    link.txCommit(slot, attached ? total - len : total);
    this.segmentsOut++;
    this.bytesOut += total;
    return true;
  }

  /**
   * Copy the packet just serialized into the capture ring: its headers from the slot, and the
   * first snaplen bytes of payload from the slot, or from the send buffer when they went as views.
   * With a vnet header the TCP checksum field holds the pseudo-header sum the kernel completes, as
   * a capture on the device shows it too.
   */
  private captureOut(
    cap: CaptureRing,
    buf: Buffer,
    ipOff: number,
    hdrLen: number,
    len: number,
    attached: boolean,
    payload: PayloadSource | null,
    payloadOffset: number,
    connId: number,
  ): void {
    const keep = Math.min(len, cap.snaplen);
    const at = cap.reserve(CAPTURE_OUT, connId, hdrLen + len, hdrLen + keep);
    if (attached) {
      cap.copyIn(at, buf, ipOff, hdrLen);
      if (keep > 0) payload!.copyPayload(cap.bytes, at + hdrLen, payloadOffset, keep);
    } else {
      cap.copyIn(at, buf, ipOff, hdrLen + keep);
    }
  }

  /**
   * ICMP destination unreachable to the app for its SYN (the upstream could not be reached, or
   * policy forbids the destination). The SYN itself is gone by now, so the quote is rebuilt from
   * the flow: the IP header and the first 8 octets of TCP (ports and sequence number) are what
   * the app's kernel needs to find the socket (RFC 792, RFC 4443 §3.1, RFC 5927).
   */
  writeUnreachable(flow: FlowTuple, clientIsn: number, prohibited: boolean, connId = 0): boolean {
    const link = this.link;
    const slot = link.txReserve();
    if (slot < 0) return false;
    const buf = link.txBuffer;
    const vnet = link.vnetHdr;
    const ipOff = vnet ? slot + VNET_HDR_LEN : slot;
    // The app's SYN as it was: from the app (remote) to the destination (local).
    const syn = this.scratchSeg;
    syn.clear();
    syn.seq = clientIsn;
    syn.flags = TcpFlag.SYN;
    syn.window = 65535;
    const origLen = writeTcpPacket(this.scratch, 0, flow.family, flow.remote, flow.local, flow.remotePort, flow.localPort, syn, 0);
    finishTcpChecksum(this.scratch, 0, 'full');
    const code =
      flow.family === 4
        ? prohibited
          ? Icmpv4UnreachableCode.ADMIN_PROHIBITED
          : Icmpv4UnreachableCode.HOST
        : prohibited
          ? Icmpv6UnreachableCode.ADMIN_PROHIBITED
          : Icmpv6UnreachableCode.ADDRESS;
    const len = writeIcmpUnreachable(buf, ipOff, flow.family, flow.local, flow.remote, code, this.scratch, 0, origLen);
    if (vnet) writeVnetNone(buf, slot);
    const cap = this.capture;
    if (cap !== null) {
      const at = cap.reserve(CAPTURE_OUT, connId, len, len);
      cap.copyIn(at, buf, ipOff, len);
    }
    const total = (vnet ? VNET_HDR_LEN : 0) + len;
    link.txCommit(slot, total);
    this.bytesOut += total;
    return true;
  }
}
