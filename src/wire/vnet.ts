/**
 * struct virtio_net_hdr (include/uapi/linux/virtio_net.h), the 10-byte header that precedes every
 * packet on a TUN fd opened with IFF_VNET_HDR:
 *
 *   off 0  u8   flags        VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID
 *   off 1  u8   gso_type     VIRTIO_NET_HDR_GSO_NONE / _TCPV4 / _TCPV6 (| _ECN)
 *   off 2  u16  hdr_len      bytes of IP + TCP headers of a GSO packet
 *   off 4  u16  gso_size     payload bytes per segment the kernel cuts a GSO packet into
 *   off 6  u16  csum_start   offset from the IP header to where checksumming starts (the TCP header)
 *   off 8  u16  csum_offset  offset of the checksum field from csum_start (16 for TCP)
 *
 * The addon never sets TUNSETVNETLE/BE, so the kernel uses the legacy layout whose 16-bit fields are
 * in host byte order; synfin runs on little-endian x86_64, hence the LE accessors here.
 */

export const VNET_HDR_LEN = 10;

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;

export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/** Offset of the checksum field within a TCP header (RFC 9293 §3.1). */
export const TCP_CSUM_OFFSET = 16;

/** Writes all ten header bytes at `off`. */
export function writeVnetHeader(
  buf: Buffer,
  off: number,
  flags: number,
  gsoType: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
): void {
  // Plain byte stores, not Buffer#writeUInt16LE: this runs for every packet sent, and the
  // method's argument validation showed in the request path's profile. Every caller passes
  // values that fit in 16 bits (header lengths, an MSS, offsets within one packet).
  buf[off] = flags;
  buf[off + 1] = gsoType;
  buf[off + 2] = hdrLen & 0xff;
  buf[off + 3] = hdrLen >>> 8;
  buf[off + 4] = gsoSize & 0xff;
  buf[off + 5] = gsoSize >>> 8;
  buf[off + 6] = csumStart & 0xff;
  buf[off + 7] = csumStart >>> 8;
  buf[off + 8] = csumOffset & 0xff;
  buf[off + 9] = csumOffset >>> 8;
}

/** A packet whose checksums are complete: no offload. */
export function writeVnetNone(buf: Buffer, off: number): void {
  buf.fill(0, off, off + VNET_HDR_LEN);
}

/**
 * A TCP packet with a partial checksum (CHECKSUM_PARTIAL): the checksum field at
 * `ipHdrLen + 16` holds the folded pseudo-header sum, not inverted, and the kernel finishes it.
 */
export function writeVnetTcpCsum(buf: Buffer, off: number, ipHdrLen: number): void {
  writeVnetHeader(buf, off, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, 0, 0, ipHdrLen, TCP_CSUM_OFFSET);
}

/**
 * A TCP super-segment for the kernel to cut into `gsoSize`-byte segments (TSO). The checksum is
 * partial as for writeVnetTcpCsum (pseudo-header over the whole TCP length); `hdrLen` = IP header
 * + TCP header (options included). The payload must be longer than gsoSize.
 */
export function writeVnetTcpGso(
  buf: Buffer,
  off: number,
  ipv6: boolean,
  ipHdrLen: number,
  tcpHdrLen: number,
  gsoSize: number,
): void {
  writeVnetHeader(
    buf,
    off,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    ipv6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
    ipHdrLen + tcpHdrLen,
    gsoSize,
    ipHdrLen,
    TCP_CSUM_OFFSET,
  );
}
