/**
 * Default TCP tunables. RFC values where the RFCs give one, Linux's where they leave a choice
 * (documented per field). `defaultTcpConfig(overrides)` fills in everything not overridden and
 * derives the window scale from the receive buffer unless it is given.
 */
import { cubic } from './cc/cubic.js';
import type { TcpConfig } from './config.js';

/** RFC 7323 §2.3: the largest shift count is 14. */
export const MAX_WSCALE = 14;

/** The largest window field (RFC 9293 §3.1: 16 bits). */
export const MAX_WINDOW_FIELD = 0xffff;

/**
 * The smallest shift such that `bytes` fits in a scaled window field (RFC 7323 §2.3), clamped
 * to 14. A buffer of at most 65535 bytes needs no scaling.
 */
export function wscaleFor(bytes: number): number {
  let shift = 0;
  while (shift < MAX_WSCALE && MAX_WINDOW_FIELD * 2 ** shift < bytes) shift++;
  return shift;
}

/**
 * Receive and send buffer per connection. A cap, not an allocation: an idle connection holds none
 * of it. 1 MB keeps a window open across a batch of 64 KB TSO segments (with 256 KB the app was
 * receive-window-limited at 3 Gbit/s; Linux lets its own buffers grow to 4–6 MB).
 */
export const DEFAULT_BUFFER_BYTES = 1024 * 1024;

export function defaultTcpConfig(overrides: Partial<TcpConfig> = {}): TcpConfig {
  const rcvBufBytes = overrides.rcvBufBytes ?? DEFAULT_BUFFER_BYTES;
  return {
    // RFC 9293 §3.4.2 leaves MSL to the implementation; 30 s gives Linux's 60 s TIME-WAIT.
    mslMs: 30_000,
    // Ethernet MTU 1500 − 20 (IPv4) − 20 (TCP) (RFC 9293 §3.7.1).
    mss: 1460,
    rcvBufBytes,
    sndBufBytes: DEFAULT_BUFFER_BYTES,
    wscale: overrides.wscale ?? wscaleFor(rcvBufBytes),
    sack: true,
    timestamps: true,
    // RFC 6298 §2.1.
    initialRtoMs: 1000,
    // RFC 6298 §2.4 says 1 s; Linux (TCP_RTO_MIN) uses 200 ms, as most stacks do today.
    minRtoMs: 200,
    // RFC 6298 §2.5: at least 60 s; Linux TCP_RTO_MAX is 120 s.
    maxRtoMs: 120_000,
    // RFC 9293 §3.8.3 R2 ≥ 100 s; Linux tcp_retries2 = 15 (≈ 15 min with backoff).
    maxRetries: 15,
    // Linux tcp_synack_retries = 5.
    maxSynAckRetries: 5,
    // RFC 9293 §3.8.6.3: MUST be < 0.5 s; Linux's minimum delayed-ACK time is 40 ms.
    delayedAckMs: 40,
    // RFC 9293 §3.8.4: keepalives off by default (MUST default to off); Linux values when on.
    keepaliveIdleMs: 0,
    keepaliveIntervalMs: 75_000,
    keepaliveProbes: 9,
    // RFC 5961 §7 leaves the limit to the implementation (Linux: 1000/s per namespace).
    challengeAckLimitPerSec: 100,
    congestionControl: cubic,
    // RFC 9406 HyStart++ (RFC 9438 §4.10: CUBIC SHOULD use it; Linux's CUBIC runs HyStart by default).
    hystart: true,
    gsoMaxBytes: 0,
    ...overrides,
  };
}

/** RFC 9293 §3.7.1: the send MSS when the peer sends no MSS option (IPv4 576 − 40). */
export const DEFAULT_MSS_IPV4 = 536;
/** RFC 8200 §5 minimum MTU 1280 − 60 (RFC 9293 §3.7.1 for IPv6). */
export const DEFAULT_MSS_IPV6 = 1220;

/** RFC 9293 §3.7.1: the peer's MSS, or the family's default when its SYN carried no MSS option. */
export function peerMssOrDefault(mssOption: number, family: 4 | 6): number {
  return mssOption > 0 ? mssOption : family === 4 ? DEFAULT_MSS_IPV4 : DEFAULT_MSS_IPV6;
}
