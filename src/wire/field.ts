/**
 * Constants shared by the codecs. Field offsets of each header live next to its view
 * (src/wire/ipv4.ts etc.), like smoltcp's `mod field`; this file holds what crosses modules.
 */

/** IP protocol / IPv6 next-header numbers (IANA "Assigned Internet Protocol Numbers"). */
export const IpProto = {
  /** IPv6 Hop-by-Hop Options (RFC 8200 §4.3). */
  HOPOPT: 0,
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  /** IPv6 Routing header (RFC 8200 §4.4). */
  IPV6_ROUTE: 43,
  /** IPv6 Fragment header (RFC 8200 §4.5). */
  IPV6_FRAG: 44,
  /** Encapsulating Security Payload (RFC 4303). */
  ESP: 50,
  /** Authentication Header (RFC 4302). */
  AH: 51,
  ICMPV6: 58,
  /** IPv6 No Next Header (RFC 8200 §4.7). */
  IPV6_NONXT: 59,
  /** IPv6 Destination Options (RFC 8200 §4.6). */
  IPV6_OPTS: 60,
} as const;

export const IPV4_HEADER_LEN = 20;
export const IPV6_HEADER_LEN = 40;
export const TCP_HEADER_LEN = 20;
export const UDP_HEADER_LEN = 8;
export const ICMP_HEADER_LEN = 8;
/** TCP options occupy at most 40 bytes (data offset ≤ 15 words, RFC 9293 §3.1). */
export const TCP_MAX_OPTIONS_LEN = 40;

/** Default TTL / hop limit of packets we originate (Linux's net.ipv4.ip_default_ttl). */
export const DEFAULT_TTL = 64;
