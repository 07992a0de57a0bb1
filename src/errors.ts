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
