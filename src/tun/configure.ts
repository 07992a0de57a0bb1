/**
 * Bring the TUN device to the state the options ask for, changing only what differs: a device
 * that is already up, with the MTU, addresses and routes asked for (or none asked for), is only
 * read (`ip -j addr show`, `ip -j route show`: no capability), so synfin can attach to a device
 * an init container made and owns nothing it does not need (issue 20, item 7).
 */
import type { Tun } from './tun.js';

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
