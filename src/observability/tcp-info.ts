/**
 * TCP_INFO of a kernel TCP socket (synfin's upstream sockets, src/proxy/upstream.ts),
 * read by the native addon (native/sockets/tcp-info.cc) with getsockopt(IPPROTO_TCP, TCP_INFO). The caller owns one Float64Array
 * of TCP_INFO_FIELDS numbers and reuses it; the indices below say which number is which.
 */
import { loadAddon } from '../native/addon.js';

/** tcpi_state: the kernel's TCP state (include/net/tcp_states.h, see KERNEL_TCP_STATE_NAMES). */
export const TCP_INFO_STATE = 0;
/** tcpi_rtt: smoothed RTT in microseconds. */
export const TCP_INFO_RTT_US = 1;
/** tcpi_rttvar: RTT variance in microseconds. */
export const TCP_INFO_RTTVAR_US = 2;
/** tcpi_retransmits: consecutive retransmissions of the current RTO episode. */
export const TCP_INFO_RETRANSMITS = 3;
/** tcpi_total_retrans: retransmitted segments over the socket's life. */
export const TCP_INFO_TOTAL_RETRANS = 4;
/** tcpi_snd_cwnd: congestion window in segments. */
export const TCP_INFO_SND_CWND = 5;
/** tcpi_unacked: segments sent and not yet acknowledged. */
export const TCP_INFO_UNACKED = 6;
/** tcpi_lost: segments considered lost. */
export const TCP_INFO_LOST = 7;
/** tcpi_bytes_acked: payload bytes acknowledged by the peer (RFC 4898 tcpEStatsAppHCThruOctetsAcked). */
export const TCP_INFO_BYTES_ACKED = 8;
/** tcpi_bytes_received: payload bytes received (RFC 4898 tcpEStatsAppHCThruOctetsReceived). */
export const TCP_INFO_BYTES_RECEIVED = 9;
export const TCP_INFO_FIELDS = 10;

/** Linux TCP state numbers (include/net/tcp_states.h) as spelled in synfin's metrics. */
export const KERNEL_TCP_STATE_NAMES: readonly string[] = [
  'UNKNOWN',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECEIVED', // TCP_SYN_RECV
  'FIN_WAIT_1',
  'FIN_WAIT_2',
  'TIME_WAIT',
  'CLOSED', // TCP_CLOSE
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  'SYN_RECEIVED', // TCP_NEW_SYN_RECV: a request socket, still SYN-RECEIVED
];

/** Fills `out` (at least TCP_INFO_FIELDS long) from the TCP socket `fd`; false if fd is not a TCP socket. */
export function tcpInfo(fd: number, out: Float64Array): boolean {
  return loadAddon().tcpInfo(fd, out);
}

/**
 * The local address of socket `fd` (getsockname) as numbers: out = [family 4 or 6, the address's
 * four 32-bit words (IPv4 in word 3), port]; false if fd is not an IPv4/IPv6 socket. Cheaper than
 * net.Socket's localAddress, which formats a string that the caller would parse back.
 */
export function localEndpoint(fd: number, out: Uint32Array): boolean {
  return loadAddon().localEndpoint(fd, out);
}
