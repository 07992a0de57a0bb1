/**
 * synfin's error catalogue. Every error thrown across a module boundary is a `SynfinError` with a
 * stable `code` (scripts and tests match on the code, never on the message) and a message that
 * reads well as a one-line CLI error (`synfin: <message>`).
 */
export class SynfinError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SynfinError';
    this.code = code;
  }
}

/** /dev/net/tun does not exist: no TUN support in the kernel, or not exposed to this container. */
export class TunNoDeviceError extends SynfinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TUN_NO_DEVICE', message, options);
    this.name = 'TunNoDeviceError';
  }
}

/** EPERM/EACCES opening or creating the device: needs root or CAP_NET_ADMIN. */
export class TunPermissionError extends SynfinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TUN_PERMISSION', message, options);
    this.name = 'TunPermissionError';
  }
}

/** The interface name does not fit in IFNAMSIZ - 1 = 15 bytes. */
export class TunNameTooLongError extends SynfinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TUN_NAME_TOO_LONG', message, options);
    this.name = 'TunNameTooLongError';
  }
}

/** Another process (or another open in this one) is attached to the device. */
export class TunBusyError extends SynfinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TUN_BUSY', message, options);
    this.name = 'TunBusyError';
  }
}

/**
 * The device could not be opened for another reason: the name is taken by an interface that is
 * not a TUN device (EINVAL), the name is invalid, or an unexpected errno (kept in `cause`).
 */
export class TunOpenError extends SynfinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TUN_OPEN', message, options);
    this.name = 'TunOpenError';
  }
}

/** Reading from an open device failed (for example the interface was deleted); reading stopped. */
export class TunIoError extends SynfinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TUN_IO', message, options);
    this.name = 'TunIoError';
  }
}

/** An operation on a closed device. */
export class TunClosedError extends SynfinError {
  constructor(message: string) {
    super('ERR_TUN_CLOSED', message);
    this.name = 'TunClosedError';
  }
}

/** An iproute2 command failed; the message holds the command line and ip's stderr on one line. */
export class IpCommandError extends SynfinError {
  /** The argument vector given to `ip`. */
  readonly args: readonly string[];
  /** ip's stderr, trimmed, newlines folded. */
  readonly stderr: string;
  /** ip's exit status, or null when it could not be run or was killed. */
  readonly status: number | null;

  constructor(args: readonly string[], stderr: string, status: number | null, options?: { cause?: unknown }) {
    const detail = stderr.length > 0 ? stderr : status === null ? 'could not run ip' : `exit status ${status}`;
    super('ERR_IP_COMMAND', `ip ${args.join(' ')}: ${detail}`, options);
    this.name = 'IpCommandError';
    this.args = args;
    this.stderr = stderr;
    this.status = status;
  }
}

/** A bad option (flag, environment variable or config file); the CLI prints it and exits 2. */
export class ConfigError extends SynfinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG', message, options);
    this.name = 'ConfigError';
  }
}

/**
 * synfin could not give up its capabilities once the device was ready (capset, prctl or the
 * re-exec failed), or was handed a TUN fd that is not one (src/tun/caps.ts). It does not go on
 * with capabilities it was meant to drop.
 */
export class CapabilityError extends SynfinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CAPABILITIES', message, options);
    this.name = 'CapabilityError';
  }
}

/**
 * A TCP building block was constructed with parameters outside its range (a programming or
 * configuration error, never a packet's doing: packets get verdicts, not exceptions).
 */
export class TcpConfigError extends SynfinError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = 'TcpConfigError';
  }
}

/** RTO bounds or initial values out of range (src/tcp/rtt.ts). */
export class RttConfigError extends TcpConfigError {
  constructor(message: string) {
    super('ERR_TCP_RTT_CONFIG', message);
    this.name = 'RttConfigError';
  }
}

/** SYN-cookie parameters out of range (src/tcp/syncookie.ts). */
export class SynCookieConfigError extends TcpConfigError {
  constructor(message: string) {
    super('ERR_TCP_SYNCOOKIE_CONFIG', message);
    this.name = 'SynCookieConfigError';
  }
}

/** A SACK scoreboard of no capacity (src/tcp/sack-scoreboard.ts). */
export class SackScoreboardError extends TcpConfigError {
  constructor(message: string) {
    super('ERR_TCP_SACK_CONFIG', message);
    this.name = 'SackScoreboardError';
  }
}

/** A send-buffer range outside what the buffer holds (src/tcp/send-buffer.ts). */
export class SendBufferError extends TcpConfigError {
  constructor(message: string) {
    super('ERR_TCP_SEND_BUFFER_RANGE', message);
    this.name = 'SendBufferError';
  }
}

/** A SipHash key that is not 16 bytes (src/tcp/siphash.ts). */
export class SipHashKeyError extends TcpConfigError {
  constructor(length: number) {
    super('ERR_SIPHASH_KEY', `SipHash key must be 16 bytes, got ${length}`);
    this.name = 'SipHashKeyError';
  }
}

/** Error codes of congestion-control construction. */
export type CongestionControlErrorCode = 'ERR_TCP_CC_UNKNOWN' | 'ERR_TCP_CC_CONFIG';

/** An unknown congestion-control name or an invalid parameter (e.g. SMSS ≤ 0) (src/tcp/cc/). */
export class CongestionControlError extends TcpConfigError {
  declare readonly code: CongestionControlErrorCode;
  constructor(code: CongestionControlErrorCode, message: string) {
    super(code, message);
    this.name = 'CongestionControlError';
  }
}

/** A memory budget of no bytes (src/tcp/memory-budget.ts; --memory-limit is checked before). */
export class MemoryLimitError extends SynfinError {
  constructor(message: string) {
    super('ERR_MEMORY_LIMIT', message);
    this.name = 'MemoryLimitError';
  }
}

/** A metric observed with the wrong number of label values (src/observability/metric-families.ts). */
export class MetricLabelsError extends SynfinError {
  constructor(message: string) {
    super('ERR_METRIC_LABELS', message);
    this.name = 'MetricLabelsError';
  }
}

export type TcpConnErrorCode = 'ERR_TCP_WRITE_AFTER_CLOSE' | 'ERR_TCP_BAD_STATE';

/** Misuse of the connection API (a programming error, never a network event). */
export class TcpConnError extends SynfinError {
  declare readonly code: TcpConnErrorCode;
  constructor(code: TcpConnErrorCode, message: string) {
    super(code, message);
    this.name = 'TcpConnError';
  }
}

export type ApiClientErrorCode = 'ERR_API_UNREACHABLE' | 'ERR_API_RESPONSE';

/**
 * `synfin connections` could not read a running synfin's API: nothing answers at --listen
 * (ERR_API_UNREACHABLE), or it answered with an error or something that is not synfin's API
 * (ERR_API_RESPONSE). The CLI exits 1 for these: the command was right, the other end failed.
 */
export class ApiClientError extends SynfinError {
  declare readonly code: ApiClientErrorCode;
  constructor(code: ApiClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ApiClientError';
  }
}
