/**
 * What the stack needs of a packet device. The TUN device implements it (src/tun), and so do the
 * in-memory links of the tests and the fault injector that sits in front of a device.
 *
 * Transmit works on slots of one shared buffer so a segment is serialized straight into the
 * memory the kernel will read: reserve a slot, write the (optional) vnet header and the IP packet
 * at its offset, commit the length, and flush once per batch.
 */
export interface LinkTx {
  /** Each packet starts with a 10-byte struct virtio_net_hdr (IFF_VNET_HDR). */
  readonly vnetHdr: boolean;
  /** The buffer that slot offsets refer to. May be replaced when the link grows: re-read it after every txReserve(). */
  readonly txBuffer: Buffer;
  /** Bytes available in a slot (vnet header included). */
  readonly txSlotSize: number;
  /** Offset of a free slot in txBuffer, or -1 when the ring is full (wait for the drain callback). */
  txReserve(): number;
  /** The slot at `offset` holds a packet of `length` bytes (vnet header included). */
  txCommit(offset: number, length: number): void;
  /** Hand the committed packets to the device. */
  txFlush(): void;
  /**
   * Optional zero-copy payload: the packet in the reserved slot at `offset` continues with
   * `buf[off, off+len)`, which the link writes from where it is (writev) instead of from the slot.
   * At most txMaxViews per packet (false beyond). `buf` must not change until the packet is written.
   */
  txAttach?(offset: number, buf: Buffer, off: number, len: number): boolean;
  readonly txMaxViews?: number;
  /** Committed packets not yet written (a link with txAttach: views are held until then). */
  readonly txQueued?: number;
  /** Called once when a full ring has room again. */
  onTxDrain(callback: () => void): void;
}

/** Receiver side of a link: the stack implements it. */
export interface LinkRx {
  /**
   * One packet: `buf[off, off+len)` holds the IP packet (vnet header already stripped).
   * `checksumKnownGood` when the device says the kernel made the packet with a partial or
   * verified checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM / DATA_VALID). The bytes are only valid during the call.
   */
  input(buf: Buffer, off: number, len: number, checksumKnownGood: boolean): void;
  /** End of a batch of input(): send what the batch made due. */
  flush(): void;
}
