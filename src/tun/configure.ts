/**
 * Bring the TUN device to the state the options ask for, changing only what differs: a device
 * that is already up, with the MTU, addresses and routes asked for (or none asked for), is only
 * read (`ip -j addr show`, `ip -j route show`: no capability), so synfin can attach to a device
 * an init container made and owns nothing it does not need (issue 20, item 7).
 */
import { capabilitiesNeeded, holdsCapabilities, ownCapabilities, reexecWithoutCapabilities, takeInheritedTun } from './caps.js';
import { Tun } from './tun.js';

export interface DeviceSpec {
  mtu: number | null;
  addresses: readonly string[];
  routes: readonly string[];
}

/** 'fd00:0::1/64' → 'fd00::1/64': the form `ip -j addr show` prints. */
function canonicalCidr(cidr: string): string {
  const slash = cidr.indexOf('/');
  const addr = slash < 0 ? cidr : cidr.slice(0, slash);
  const len = slash < 0 ? '' : cidr.slice(slash);
  if (!addr.includes(':')) return `${addr}${len}`;
  return `${new URL(`http://[${addr}]/`).hostname.slice(1, -1)}${len}`;
}

/** Applies `spec` to `tun` where it differs; returns what was changed ('up', 'mtu 1400', ...), [] when nothing. */
export function configureDevice(tun: Tun, spec: DeviceSpec): string[] {
  const changes: string[] = [];
  const state = tun.linkState();
  if (spec.mtu !== null && state.mtu !== spec.mtu) {
    tun.setMtu(spec.mtu);
    changes.push(`mtu ${spec.mtu}`);
  }
  const have = new Set(state.addresses.map(canonicalCidr));
  for (const a of spec.addresses) {
    if (have.has(canonicalCidr(a))) continue;
    tun.addAddress(a);
    changes.push(`address ${a}`);
  }
  if (!state.up) {
    tun.up();
    changes.push('up');
  }
  for (const r of spec.routes) {
    if (tun.hasRoute(r)) continue;
    tun.addRoute(r);
    changes.push(`route ${r}`);
  }
  return changes;
}

export interface DeviceOpenOptions {
  /** Move the device into this network namespace first (the demo). */
  netns?: string | undefined;
  /**
   * Least privilege (`synfin run`): adopt the device handed over by an exec (src/tun/caps.ts);
   * otherwise, once the device is ready, a process that holds any capability drops them all but
   * what `listenPort` needs and re-executes itself (this call then never returns).
   */
  dropCapabilities?: boolean;
  listenPort?: number;
  /** Capabilities the user asked to keep (--keep-capability), beyond what the options need. */
  keepCapabilities?: readonly string[];
}

/**
 * Opens (or adopts) the device named in `spec` and brings it to that state. main.ts calls it
 * before loading the rest of synfin, so the re-exec of the capability drop costs one Node
 * start-up and not two loads of every module; startSynfin calls it again and adopts the fd.
 */
export function openConfiguredDevice(spec: DeviceSpec & { tun: string }, opts: DeviceOpenOptions = {}): { tun: Tun; changes: string[] } {
  const inherited = opts.dropCapabilities === true ? takeInheritedTun() : null;
  let tun: Tun;
  let changes: string[];
  if (inherited !== null) {
    tun = Tun.open({ name: spec.tun, vnetHdr: true, fd: inherited.fd });
    changes = inherited.changes;
  } else {
    tun = Tun.open({ name: spec.tun, vnetHdr: true });
    try {
      if (opts.netns !== undefined) tun.moveToNetns(opts.netns);
      // Only what differs: an init container's device, up and configured, needs no capability.
      changes = configureDevice(tun, spec);
    } catch (err) {
      tun.close();
      throw err;
    }
  }
  // Checked after an adoption too: a handed-over fd is no proof that the drop happened.
  const keep = [...capabilitiesNeeded(opts.listenPort ?? 0), ...(opts.keepCapabilities ?? [])];
  if (opts.dropCapabilities === true && holdsCapabilities(ownCapabilities(), keep)) {
    // Never returns: this process becomes a fresh synfin without capabilities (src/tun/caps.ts).
    reexecWithoutCapabilities(tun, keep, changes);
  }
  return { tun, changes };
}
