/**
 * deploy/sidecar-routing.sh, for real, in network namespaces this test creates: the policy rules
 * and the TUN route it installs, what the kernel's route lookups then decide for the app's TCP,
 * synfin's own sockets, loopback and the metrics port, idempotency, --remove, and bad usage.
 * (test/proxy/sidecar.test.ts runs synfin itself behind the script.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { destroyAllNetns, NetNs, uniqueIfName, type ExecResult } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { repoPath } from './code.js';

const SCRIPT = repoPath('deploy', 'sidecar-routing.sh');
/** A uid no process of the test uses (the rules only compare numbers). */
const UID = String(20_000 + (process.pid % 10_000));
const OTHER_UID = String(Number(UID) + 1);

afterEach(destroyAllNetns);

function run(ns: NetNs, args: string[]): Promise<ExecResult> {
  return ns.exec('bash', [SCRIPT, ...args]);
}

async function runOk(ns: NetNs, args: string[]): Promise<ExecResult> {
  const r = await run(ns, args);
  expect(r.code, r.stderr).toBe(0);
  return r;
}

/** `ip [-4|-6] rule show`, one rule per line, whitespace normalised. */
function rules(ns: NetNs, family: '-4' | '-6'): string[] {
  return ns
    .ip([family, 'rule', 'show'])
    .split('\n')
    .map((l) => l.replace(/\s+/g, ' ').trim())
    .filter((l) => l.length > 0);
}

/** `ip [-4|-6] route show table ID`, whitespace normalised ('' when the table is empty or was never made). */
function table(ns: NetNs, family: '-4' | '-6', id = '100'): string {
  try {
    return ns.ip([family, 'route', 'show', 'table', id]).replace(/\s+/g, ' ').trim();
  } catch (err) {
    if (/FIB table does not exist/.test(String(err))) return '';
    throw err;
  }
}

/** A namespace with a TUN device made the way the issue describes (`ip tuntap add mode tun`). */
function namespaceWithTun(): { ns: NetNs; tun: string } {
  const ns = NetNs.create('rt');
  const tun = uniqueIfName('srt');
  ns.ip(['tuntap', 'add', 'dev', tun, 'mode', 'tun']);
  return { ns, tun };
}

/**
 * A namespace that also has an ordinary way out (a veth with a default route, the pod's eth0),
 * so route lookups that avoid the TUN device have somewhere to go.
 */
function routedNamespace(): { ns: NetNs; tun: string; eth: string; addr4: string; addr6: string } {
  const { ns, tun } = namespaceWithTun();
  const eth = uniqueIfName('sre');
  const peer = uniqueIfName('srp');
  const n = (process.pid % 200) + 20;
  const addr4 = `10.${n}.91.2`;
  const addr6 = `2001:db8:${n.toString(16)}::2`;
  ns.ip(['link', 'add', eth, 'type', 'veth', 'peer', 'name', peer]);
  ns.ip(['addr', 'add', `${addr4}/24`, 'dev', eth]);
  ns.ip(['-6', 'addr', 'add', `${addr6}/64`, 'dev', eth, 'nodad']);
  ns.linkUp(eth);
  ns.linkUp(peer);
  ns.ip(['route', 'add', 'default', 'via', `10.${n}.91.1`]);
  ns.ip(['-6', 'route', 'add', 'default', 'via', `2001:db8:${n.toString(16)}::1`]);
  return { ns, tun, eth, addr4, addr6 };
}

/** `ip route get DEST ...selectors` → the device the kernel picks (throws when unroutable). */
function routeDevice(ns: NetNs, family: '-4' | '-6', dest: string, selectors: string[]): string {
  const out = ns.ip([family, 'route', 'get', dest, ...selectors]);
  if (/^local /.test(out)) return 'local';
  const m = / dev (\S+)/.exec(out);
  if (m === null) throw new Error(`no device in: ${out}`);
  return m[1]!;
}

describeIfTun('sidecar-routing.sh: rules and routes', () => {
  it('setup existing tun installs uid loopback mark and catch all rules', async () => {
    const { ns, tun } = namespaceWithTun();
    const r = await runOk(ns, ['--tun', tun, '--uid', UID, '--keep-port', '8080']);
    // Ports are no longer a way around the device: the option is accepted and does nothing.
    expect(r.stderr).toMatch(/--keep-port have no effect/);
    expect(rules(ns, '-4')).toEqual([
      '0: from all lookup local',
      `100: from all uidrange ${UID}-${UID} lookup main`,
      `101: from all uidrange ${UID}-${UID} unreachable`,
      '110: from all to 127.0.0.0/8 lookup local',
      '120: from all fwmark 0x100000/0x100000 lookup main',
      '200: from all ipproto tcp lookup 100',
      '32766: from all lookup main',
      '32767: from all lookup default',
    ]);
  });

  it('setup ipv6 installs the same rules', async () => {
    const { ns, tun } = namespaceWithTun();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    expect(rules(ns, '-6')).toEqual([
      '0: from all lookup local',
      `100: from all uidrange ${UID}-${UID} lookup main`,
      `101: from all uidrange ${UID}-${UID} unreachable`,
      '110: from all to ::1 lookup local',
      '120: from all fwmark 0x100000/0x100000 lookup main',
      '200: from all ipproto tcp lookup 100',
      '32766: from all lookup main',
    ]);
  });

  it('setup table100 has one default route via the tun', async () => {
    const { ns, tun } = namespaceWithTun();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    expect(table(ns, '-4')).toMatch(new RegExp(`^default dev ${tun} scope link( linkdown)?$`));
    expect(table(ns, '-6')).toMatch(new RegExp(`^default dev ${tun} metric 1024( linkdown)? pref medium$`));
  });

  it('setup other table is used for the catch all and the route', async () => {
    const { ns, tun } = namespaceWithTun();
    await runOk(ns, ['--tun', tun, '--uid', UID, '--table', '4242', '--no-ipv6']);
    expect(rules(ns, '-4')).toContain('200: from all ipproto tcp lookup 4242');
    expect(table(ns, '-4', '4242')).toMatch(new RegExp(`^default dev ${tun} `));
    expect(table(ns, '-4', '100')).toBe('');
  });

  it('setup run twice changes nothing', async () => {
    const { ns, tun } = namespaceWithTun();
    await runOk(ns, ['--tun', tun, '--uid', UID, '--keep-port', '8080']);
    const first = [rules(ns, '-4'), rules(ns, '-6'), table(ns, '-4'), table(ns, '-6')];
    await runOk(ns, ['--tun', tun, '--uid', UID, '--keep-port', '8080']);
    expect([rules(ns, '-4'), rules(ns, '-6'), table(ns, '-4'), table(ns, '-6')]).toEqual(first);
  });

  it('setup rerun with another uid and mark replaces the stale rules and the marking', async () => {
    const { ns, tun } = namespaceWithTun();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    await runOk(ns, ['--tun', tun, '--uid', OTHER_UID, '--mark', '0x40']);
    const now = rules(ns, '-4');
    expect(now.filter((r) => r.includes('uidrange'))).toEqual([
      `100: from all uidrange ${OTHER_UID}-${OTHER_UID} lookup main`,
      `101: from all uidrange ${OTHER_UID}-${OTHER_UID} unreachable`,
    ]);
    expect(now.filter((r) => r.startsWith('120:'))).toEqual(['120: from all fwmark 0x40/0x40 lookup main']);
    const nft = ns.execSync('nft', ['list', 'table', 'inet', 'synfin']);
    expect(nft).toContain(`meta skuid ${OTHER_UID} ct mark set ct mark | 0x00000040`);
    expect(nft).not.toContain(`skuid ${UID} `);
  });

  it('setup source port rules of earlier versions are removed', async () => {
    // The rules the script used to make ("replies" by source port): a way around the device.
    const { ns, tun } = namespaceWithTun();
    ns.ip(['rule', 'add', 'ipproto', 'tcp', 'sport', '8080', 'lookup', 'main', 'priority', '120']);
    ns.ip(['-6', 'rule', 'add', 'ipproto', 'tcp', 'sport', '9477', 'lookup', 'main', 'priority', '120']);
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    expect(rules(ns, '-4').filter((r) => r.includes('sport'))).toEqual([]);
    expect(rules(ns, '-6').filter((r) => r.includes('sport'))).toEqual([]);
  });

  it('setup marks inbound and synfins connections in one nft table', async () => {
    const { ns, tun } = namespaceWithTun();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    const nft = ns
      .execSync('nft', ['list', 'table', 'inet', 'synfin'])
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0);
    expect(nft).toEqual([
      'table inet synfin {',
      'chain inbound {',
      'type filter hook prerouting priority mangle; policy accept;',
      `meta l4proto tcp ct state new iifname != { "lo", "${tun}" } ct mark set ct mark | 0x00100000`,
      'ct mark & 0x00100000 == 0x00100000 meta mark set meta mark | 0x00100000',
      '}',
      'chain outbound {',
      'type route hook output priority mangle; policy accept;',
      `meta l4proto tcp ct state new meta skuid ${UID} ct mark set ct mark | 0x00100000`,
      `tcp flags syn / syn,ack meta skuid != ${UID} ct mark set ct mark & 0xffefffff`,
      `meta skuid ${UID} accept`,
      'ct mark & 0x00100000 == 0x00100000 meta mark set meta mark | 0x00100000',
      '}',
      '}',
    ]);
    expect(ns.execSync('cat', ['/proc/sys/net/ipv4/tcp_fwmark_accept']).trim()).toBe('1');
  });

  it('setup missing tun creates a persistent tun owned by the uid', async () => {
    const ns = NetNs.create('rt');
    const tun = uniqueIfName('srt');
    await runOk(ns, ['--tun', tun, '--uid', UID, '--no-ipv6']);
    const link = ns.ip(['-d', 'link', 'show', 'dev', tun]);
    expect(link).toMatch(/\btun type tun\b/);
    expect(link).toMatch(/\bpersist on\b/);
    expect(link).toMatch(new RegExp(`\\buser ${UID}\\b`));
    expect(link).toMatch(/<[^>]*\bUP\b[^>]*>/);
  });

  it('setup ipv6 disabled on the device installs ipv4 only', async () => {
    const ns = NetNs.create('rt');
    ns.execSync('sh', ['-c', 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6']);
    const tun = uniqueIfName('srt');
    const r = await runOk(ns, ['--tun', tun, '--uid', UID]);
    expect(r.stderr).toMatch(/IPv6 is disabled/);
    expect(rules(ns, '-4')).toContain('200: from all ipproto tcp lookup 100');
    expect(rules(ns, '-6').some((l) => l.includes('ipproto tcp'))).toBe(false);
  });

  it('setup strict rp filter makes the namespace loose', async () => {
    // Strict reverse-path filtering would drop replies to synfin's upstream sockets: the check's
    // lookup (as uid 0) finds the TUN device for TCP.
    const { ns, tun } = namespaceWithTun();
    ns.execSync('sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter']);
    await runOk(ns, ['--tun', tun, '--uid', UID, '--no-ipv6']);
    expect(ns.execSync('cat', ['/proc/sys/net/ipv4/conf/all/rp_filter']).trim()).toBe('2');
  });

  it('setup rp filter off is left alone', async () => {
    const { ns, tun } = namespaceWithTun();
    ns.execSync('sh', ['-c', 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f; done']);
    await runOk(ns, ['--tun', tun, '--uid', UID, '--no-ipv6']);
    expect(ns.execSync('cat', ['/proc/sys/net/ipv4/conf/all/rp_filter']).trim()).toBe('0');
  });

  it('setup strict rp filter with read only proc sys exits 1 before any rule', async () => {
    // As in a container: /proc/sys read-only.
    const { ns, tun } = namespaceWithTun();
    ns.execSync('sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter']);
    const before = rules(ns, '-4');
    const r = await ns.exec('unshare', [
      '-m',
      'sh',
      '-c',
      'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec bash "$0" "$@"',
      SCRIPT,
      '--tun',
      tun,
      '--uid',
      UID,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/set net\.ipv4\.conf\.all\.rp_filter=2/);
    expect(rules(ns, '-4')).toEqual(before);
  });

  it('remove deletes every rule and the route and keeps the device', async () => {
    const { ns, tun } = namespaceWithTun();
    const before = [rules(ns, '-4'), rules(ns, '-6')];
    await runOk(ns, ['--tun', tun, '--uid', UID, '--keep-port', '8080']);
    await runOk(ns, ['--remove', '--tun', tun]);
    expect([rules(ns, '-4'), rules(ns, '-6')]).toEqual(before);
    expect(table(ns, '-4')).toBe('');
    expect(table(ns, '-6')).toBe('');
    expect(ns.execSync('nft', ['list', 'tables'])).not.toContain('synfin');
    expect(ns.links()).toContain(tun);
  });

  it('remove run twice succeeds', async () => {
    const { ns, tun } = namespaceWithTun();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    await runOk(ns, ['--remove', '--tun', tun]);
    await runOk(ns, ['--remove', '--tun', tun]);
  });

  it('remove with delete tun deletes the device', async () => {
    const { ns, tun } = namespaceWithTun();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    await runOk(ns, ['--remove', '--delete-tun', '--tun', tun]);
    expect(ns.links()).not.toContain(tun);
  });

  it('setupAfterRemove: restores the same rules', async () => {
    const { ns, tun } = namespaceWithTun();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    const first = rules(ns, '-4');
    await runOk(ns, ['--remove', '--tun', tun]);
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    expect(rules(ns, '-4')).toEqual(first);
  });
});

describeIfTun('sidecar-routing.sh: what the kernel then routes where', () => {
  const DEST4 = '198.18.5.5';
  const DEST6 = '2001:db8:ffff::5';

  it('routeLookup: app tcp goes to the tun', async () => {
    const { ns, tun } = routedNamespace();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp'])).toBe(tun);
    expect(routeDevice(ns, '-6', DEST6, ['ipproto', 'tcp'])).toBe(tun);
  });

  it('routeLookup: synfins uid uses the ordinary route', async () => {
    const { ns, tun, eth } = routedNamespace();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp', 'uid', UID])).toBe(eth);
    expect(routeDevice(ns, '-6', DEST6, ['ipproto', 'tcp', 'uid', UID])).toBe(eth);
  });

  it('routeLookup: synfins uid without an ordinary route is unreachable not the tun', async () => {
    const { ns, tun } = routedNamespace();
    await runOk(ns, ['--tun', tun, '--uid', UID, '--no-ipv6']);
    ns.ip(['route', 'del', 'default']);
    expect(() => routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp', 'uid', UID])).toThrow(/unreachable/i);
    // The app's TCP still goes to the device.
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp'])).toBe(tun);
  });

  it('routeLookup: non tcp uses the ordinary route', async () => {
    const { ns, tun, eth } = routedNamespace();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'udp'])).toBe(eth);
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'icmp'])).toBe(eth);
  });

  it('routeLookup: marked packets use the ordinary route whatever their source port', async () => {
    const { ns, tun, eth } = routedNamespace();
    await runOk(ns, ['--tun', tun, '--uid', UID, '--mark', '0x40']);
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp', 'mark', '0x40'])).toBe(eth);
    expect(routeDevice(ns, '-6', DEST6, ['ipproto', 'tcp', 'mark', '0x40'])).toBe(eth);
    // Other mark bits are someone else's.
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp', 'mark', '0x4f0'])).toBe(eth);
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp', 'mark', '0x20'])).toBe(tun);
    // A source port is no exemption any more (the app's server port, the metrics port).
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp', 'sport', '8080'])).toBe(tun);
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp', 'sport', '9477'])).toBe(tun);
    expect(routeDevice(ns, '-6', DEST6, ['ipproto', 'tcp', 'sport', '9477'])).toBe(tun);
  });

  it('routeLookup: loopback and own addresses stay local', async () => {
    const { ns, tun, addr4, addr6 } = routedNamespace();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    expect(routeDevice(ns, '-4', '127.0.0.1', ['ipproto', 'tcp'])).toBe('local');
    expect(routeDevice(ns, '-4', addr4, ['ipproto', 'tcp'])).toBe('local');
    expect(routeDevice(ns, '-6', '::1', ['ipproto', 'tcp'])).toBe('local');
    expect(routeDevice(ns, '-6', addr6, ['ipproto', 'tcp'])).toBe('local');
  });

  it('routeLookup: excluded destinations and ports use the ordinary route', async () => {
    const { ns, tun, eth } = routedNamespace();
    await runOk(ns, ['--tun', tun, '--uid', UID, '--exclude', '198.18.5.0/24', '--exclude', '2001:db8:ffff::/48', '--exclude-port', '5432']);
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp'])).toBe(eth);
    expect(routeDevice(ns, '-6', DEST6, ['ipproto', 'tcp'])).toBe(eth);
    // Outside the excluded CIDRs: still through synfin, except to the excluded port.
    expect(routeDevice(ns, '-4', '198.18.6.5', ['ipproto', 'tcp', 'dport', '443'])).toBe(tun);
    expect(routeDevice(ns, '-4', '198.18.6.5', ['ipproto', 'tcp', 'dport', '5432'])).toBe(eth);
    expect(routeDevice(ns, '-6', '2001:db8:fffe::5', ['ipproto', 'tcp', 'dport', '5432'])).toBe(eth);
  });

  it('routeLookup: included only those destinations go to the tun from the environment too', async () => {
    const { ns, tun, eth } = routedNamespace();
    // As the kustomize component passes them: SYNFIN_ROUTING_INCLUDE from its ConfigMap.
    const r = await ns.exec('env', ['SYNFIN_ROUTING_INCLUDE=198.18.5.0/24, 2001:db8:ffff::/48', 'bash', SCRIPT, '--tun', tun, '--uid', UID]);
    expect(r.code, r.stderr).toBe(0);
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp'])).toBe(tun);
    expect(routeDevice(ns, '-6', DEST6, ['ipproto', 'tcp'])).toBe(tun);
    expect(routeDevice(ns, '-4', '198.18.6.5', ['ipproto', 'tcp'])).toBe(eth);
    expect(routeDevice(ns, '-6', '2001:db8:fffe::5', ['ipproto', 'tcp'])).toBe(eth);
    expect(rules(ns, '-4').filter((l) => l.startsWith('200:'))).toEqual(['200: from all to 198.18.5.0/24 ipproto tcp lookup 100']);
  });

  it('setup rerun without includes or excludes restores the catch all and drops the exceptions', async () => {
    const { ns, tun } = routedNamespace();
    await runOk(ns, ['--tun', tun, '--uid', UID, '--include', '198.18.5.0/24', '--exclude', '198.18.5.7/32', '--exclude-port', '22']);
    expect(rules(ns, '-4').filter((l) => /^(150|200):/.test(l))).toEqual([
      '150: from all to 198.18.5.7 lookup main', // ip prints a /32 as the address
      '150: from all ipproto tcp dport 22 lookup main',
      '200: from all to 198.18.5.0/24 ipproto tcp lookup 100',
    ]);
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    expect(rules(ns, '-4').filter((l) => /^(150|200):/.test(l))).toEqual(['200: from all ipproto tcp lookup 100']);
    await runOk(ns, ['--remove', '--tun', tun]);
    expect(rules(ns, '-4').filter((l) => /^(150|200):/.test(l))).toEqual([]);
  });

  it('routeLookup: after remove app tcp uses the ordinary route', async () => {
    const { ns, tun, eth } = routedNamespace();
    await runOk(ns, ['--tun', tun, '--uid', UID]);
    await runOk(ns, ['--remove', '--tun', tun]);
    expect(routeDevice(ns, '-4', DEST4, ['ipproto', 'tcp'])).toBe(eth);
  });
});

describeIfTun('sidecar-routing.sh: bad usage', () => {
  // Run inside a namespace anyway, so a validation bug could never touch the host's routing.
  const cases: Array<[string, string[], RegExp]> = [
    ['uid 0', ['--uid', '0'], /--uid: synfin must not run as root/],
    ['a non-numeric uid', ['--uid', 'synfin'], /--uid: "synfin" is not a numeric uid/],
    ['the main table', ['--table', '254'], /--table: 254 is a reserved table/],
    ['a port out of range', ['--keep-port', '70000'], /--keep-port: "70000" is not a port/],
    ['a bad CIDR', ['--exclude', '10.0.0.0/33'], /--exclude: "10.0.0.0\/33" is not a CIDR/],
    ['an included address without a prefix', ['--include', '10.0.0.1'], /--include: "10.0.0.1" is not a CIDR/],
    ['an excluded port out of range', ['--exclude-port', '0'], /--exclude-port: "0" is not a port/],
    ['a mark of zero', ['--mark', '0'], /--mark: "0" is not a mark/],
    ['a mark that is not a number', ['--mark', 'red'], /--mark: "red" is not a mark/],
    ['an unknown argument', ['--frobnicate'], /unknown argument "--frobnicate"/],
    ['--delete-tun without --remove', ['--delete-tun'], /--delete-tun only goes with --remove/],
    ['a bad interface name', ['--tun', 'this-name-is-too-long'], /--tun: .* is not a valid interface name/],
  ];
  for (const [what, args, message] of cases) {
    it(`usage_${what.replace(/\W+/g, '_')}_exits2WithOneLine`, async () => {
      const ns = NetNs.create('rt');
      const before = rules(ns, '-4');
      const r = await run(ns, args);
      expect(r.code).toBe(2);
      expect(r.stderr.split('\n')[0]).toMatch(message);
      expect(rules(ns, '-4')).toEqual(before);
    });
  }
});

describe('sidecar-routing.sh: --help', () => {
  it('help lists every option', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync('bash', [SCRIPT, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const opt of ['--tun', '--uid', '--table', '--mark', '--metrics-port', '--keep-port', '--no-ipv6', '--remove', '--delete-tun', '--include', '--exclude', '--exclude-port']) {
      expect(r.stdout).toContain(opt);
    }
  });
});
