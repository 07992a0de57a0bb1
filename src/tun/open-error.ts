/** The TUN device's errno-coded open errors, mapped onto synfin's typed errors (src/errors.ts). */
import {
  TunBusyError,
  TunNameTooLongError,
  TunNoDeviceError,
  TunOpenError,
  TunPermissionError,
} from '../errors.js';

/**
 * Turns an error thrown by the addon's open() into synfin's typed error. Errors that are not
 * system errors (no string `code`) are returned as they are.
 */
export function tunOpenError(err: unknown, name: string): Error {
  if (!(err instanceof Error)) return new TunOpenError(`cannot open TUN device ${name}: ${String(err)}`);
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      return new TunNoDeviceError(
        `cannot open TUN device ${name}: /dev/net/tun is missing (load the tun module, or give the container /dev/net/tun)`,
        { cause: err },
      );
    case 'EPERM':
    case 'EACCES':
      return new TunPermissionError(
        `cannot open TUN device ${name}: permission denied (${e.syscall ?? 'open'} ${e.code}); run as root or with CAP_NET_ADMIN`,
        { cause: err },
      );
    case 'ENAMETOOLONG':
      return new TunNameTooLongError(
        `TUN device name "${name}" is too long: at most 15 bytes`,
        { cause: err },
      );
    case 'EBUSY':
      return new TunBusyError(`TUN device ${name} is busy: another process is attached to it`, { cause: err });
    case 'EINVAL':
      return new TunOpenError(
        `cannot open TUN device ${name}: invalid name, or an interface of that name exists and is not a TUN device (or its multi-queue or vnet header setting differs)`,
        { cause: err },
      );
    case undefined:
      return err;
    default:
      return new TunOpenError(`cannot open TUN device ${name}: ${e.message}`, { cause: err });
  }
}
