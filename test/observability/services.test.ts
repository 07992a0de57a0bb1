/**
 * Named services: the --service and --service-file syntax, the limits, the classifier (first match
 * wins, IPv6, port ranges, `other`), and the remap of connections when the services change.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  MAX_SERVICES,
  parseServiceDocument,
  parseServiceSpec,
  remapIndices,
  ServiceCatalogue,
  Services,
} from '../../src/observability/services.js';
import { parseAddress } from '../../src/wire/address.js';

function catalogue(...specs: string[]): ServiceCatalogue {
  return new ServiceCatalogue(specs.map((s) => parseServiceSpec(s)));
}

/** The service name of ADDR:PORT under a catalogue, through classify() on the numbers. */
function nameOf(c: ServiceCatalogue, addr: string, port: number): string {
  const a = parseAddress(addr)!;
  return c.nameOf(c.classify(a.family, a.words, port));
}

describe('--service NAME=CIDR[:PORT[-PORT]]', () => {
  it('reads an IPv4 network with a port, a range, or no port', () => {
    expect(parseServiceSpec('payments=10.0.12.0/24:443')).toMatchObject({ name: 'payments', family: 4, prefix: 24, portLow: 443, portHigh: 443 });
    expect(parseServiceSpec('web=10.0.0.0/8:8000-8999')).toMatchObject({ portLow: 8000, portHigh: 8999 });
    expect(parseServiceSpec('all=10.1.0.0/16')).toMatchObject({ portLow: 0, portHigh: 65535 });
    expect(parseServiceSpec('one=10.1.2.3:80')).toMatchObject({ prefix: 32, portLow: 80 });
  });

  it('reads IPv6 with the ports after the prefix or in brackets', () => {
    expect(parseServiceSpec('db=2001:db8::/64:5432')).toMatchObject({ family: 6, prefix: 64, portLow: 5432, portHigh: 5432 });
    expect(parseServiceSpec('db=[2001:db8::1]:5432')).toMatchObject({ family: 6, prefix: 128, portLow: 5432 });
    expect(parseServiceSpec('db=[2001:db8::/48]:1000-2000')).toMatchObject({ family: 6, prefix: 48, portLow: 1000, portHigh: 2000 });
    expect(parseServiceSpec('db=2001:db8::1')).toMatchObject({ family: 6, prefix: 128, portLow: 0, portHigh: 65535 });
  });

  it('clears host bits of the network', () => {
    const c = catalogue('net=10.0.12.77/24');
    expect(nameOf(c, '10.0.12.1', 80)).toBe('net');
  });

  it.each([
    ['payments', /must look like NAME=CIDR/],
    ['=10.0.0.0/8', /must look like NAME=CIDR/],
    ['bad name=10.0.0.0/8', /service name "bad name"/],
    ['-lead=10.0.0.0/8', /service name "-lead"/],
    [`${'x'.repeat(129)}=10.0.0.0/8`, /is not 1-128 characters/],
    ['quo"te=10.0.0.0/8', /service name/],
    ['a+b=10.0.0.0/8', /service name "a\+b"/],
    ['other=10.0.0.0/8', /"other" is reserved/],
    ['x=10.0.0.0/33', /bad prefix length/],
    ['x=banana', /not an IP address or CIDR/],
    ['x=10.0.0.0/8:0', /bad port/],
    ['x=10.0.0.0/8:70000', /bad port/],
    ['x=10.0.0.0/8:90-80', /bad port/],
    ['x=[2001:db8::1', /unbalanced/],
  ])('refuses %s with one line naming the problem', (spec, message) => {
    let err: unknown;
    try {
      parseServiceSpec(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/^--service/);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
  });

  it('takes Kubernetes-style names', () => {
    expect(parseServiceSpec('default/kubernetes=10.96.0.1:443').name).toBe('default/kubernetes');
  });
});

describe('the classifier', () => {
  it('gives the first matching rule, and other to the rest', () => {
    const c = catalogue('special=10.0.12.5/32:443', 'payments=10.0.12.0/24:443', 'wide=10.0.0.0/8');
    expect(nameOf(c, '10.0.12.5', 443)).toBe('special');
    expect(nameOf(c, '10.0.12.6', 443)).toBe('payments');
    expect(nameOf(c, '10.0.12.6', 80)).toBe('wide');
    expect(nameOf(c, '10.200.0.1', 1)).toBe('wide');
    expect(nameOf(c, '192.168.1.1', 443)).toBe('other');
    expect(c.names).toEqual(['other', 'special', 'payments', 'wide']);
  });

  it('checks port ranges at both ends', () => {
    const c = catalogue('web=10.0.0.0/8:8000-8999');
    expect(nameOf(c, '10.1.1.1', 7999)).toBe('other');
    expect(nameOf(c, '10.1.1.1', 8000)).toBe('web');
    expect(nameOf(c, '10.1.1.1', 8999)).toBe('web');
    expect(nameOf(c, '10.1.1.1', 9000)).toBe('other');
  });

  it('classifies IPv6 networks on every word, and keeps the families apart', () => {
    const c = catalogue('v6=2001:db8:1:2::/64:443', 'v4all=0.0.0.0/0', 'odd=2001:db8:1:2:8000::/65');
    expect(nameOf(c, '2001:db8:1:2::99', 443)).toBe('v6');
    expect(nameOf(c, '2001:db8:1:3::99', 443)).toBe('other');
    expect(nameOf(c, '2001:db8:1:2:8000::1', 80)).toBe('odd');
    expect(nameOf(c, '2001:db8:1:2:7fff::1', 80)).toBe('other');
    // ::/0-style catch-all for IPv4 does not take IPv6 destinations.
    expect(nameOf(c, '::1', 80)).toBe('other');
    expect(nameOf(c, '127.0.0.1', 80)).toBe('v4all');
  });

  it('lets one name cover several networks (one index)', () => {
    const c = catalogue('db=10.0.1.0/24:5432', 'db=fd00::/8:5432', 'cache=10.0.2.0/24');
    expect(c.names).toEqual(['other', 'db', 'cache']);
    expect(nameOf(c, '10.0.1.9', 5432)).toBe('db');
    expect(nameOf(c, 'fd00::9', 5432)).toBe('db');
  });

  it('serviceOf() reads destinations as /api/connections spells them', () => {
    const c = catalogue('web=10.0.0.0/8:443', 'db=2001:db8::/32:5432', 'any=192.0.2.0/24');
    expect(c.serviceOf('10.1.2.3:443')).toBe('web');
    expect(c.serviceOf('10.1.2.3:80')).toBe('other');
    expect(c.serviceOf('[2001:db8::5]:5432')).toBe('db');
    // Without a port only rules without ports match.
    expect(c.serviceOf('192.0.2.9')).toBe('any');
    expect(c.serviceOf('10.1.2.3')).toBe('other');
    expect(c.serviceOf('not an address')).toBe('other');
    const s = new Services(c);
    expect(s.serviceOf('10.1.2.3:443')).toBe('web');
  });

  it(`allows ${MAX_SERVICES} names and refuses one more`, () => {
    const specs = Array.from({ length: MAX_SERVICES }, (_, i) => `s${i}=10.${i >> 8}.${i & 255}.0/24`);
    expect(catalogue(...specs).size).toBe(MAX_SERVICES);
    // Rules beyond the names are fine: the bound is on names (the label's values).
    expect(catalogue(...specs, 's0=11.0.0.0/8').size).toBe(MAX_SERVICES);
    expect(() => catalogue(...specs, 'one-more=11.0.0.0/8')).toThrow(/257 service names, more than 256/);
  });
});

describe('--service-file entries', () => {
  it('reads {name, cidr, ports} with a port, a range, a list or none', () => {
    const rules = parseServiceDocument(
      [
        { name: 'default/web', cidr: '10.96.0.10', ports: [80, '443'] },
        { name: 'batch', cidr: '10.0.0.0/8', ports: '8000-8999' },
        { name: 'v6', cidr: 'fd00::/8' },
      ],
      'f',
    );
    expect(rules.map((r) => [r.name, r.portLow, r.portHigh])).toEqual([
      ['default/web', 80, 80],
      ['default/web', 443, 443],
      ['batch', 8000, 8999],
      ['v6', 0, 65535],
    ]);
    expect(parseServiceDocument(null, 'f')).toEqual([]);
    expect(parseServiceDocument([], 'f')).toEqual([]);
  });

  it.each([
    [{ services: [] }, /expected a list/],
    [['x=10.0.0.0/8'], /entry 1: expected \{name, cidr, ports\}/],
    [[{ name: 'a', cidr: '10.0.0.0/8', port: 80 }], /unknown key "port"/],
    [[{ name: 'a' }], /"cidr" must be/],
    [[{ name: 'a b', cidr: '10.0.0.0/8' }], /service name "a b"/],
    [[{ name: 'a', cidr: '10.0.0.0/8', ports: [] }], /empty list/],
    [[{ name: 'a', cidr: '10.0.0.0/8', ports: [{}] }], /a port is a number/],
    [[{ name: 'a', cidr: '10.0.0.0/8' }, { name: 'b', cidr: '10.0.0.0/40' }], /entry 2: "10.0.0.0\/40" has a bad prefix length/],
  ])('refuses a bad document (%j)', (doc, message) => {
    expect(() => parseServiceDocument(doc, '--service-file f')).toThrow(message);
  });
});

describe('a change of services', () => {
  it('keeps each live connection under its name, and moves names that went away to other', () => {
    const before = catalogue('a=10.0.1.0/24', 'b=10.0.2.0/24', 'c=10.0.3.0/24');
    const after = catalogue('c=10.0.3.0/24', 'new=10.0.4.0/24', 'a=10.0.1.0/24');
    const map = remapIndices(before, after);
    expect(Array.from(map).map((i) => after.nameOf(i))).toEqual(['other', 'a', 'other', 'c']);
  });

  it('tells its listeners the new and the previous catalogue', () => {
    const s = new Services();
    const seen: string[][] = [];
    s.onChange((next, previous) => seen.push([...previous.names, '→', ...next.names]));
    s.replace(catalogue('x=10.0.0.0/8'));
    expect(s.current.names).toEqual(['other', 'x']);
    expect(seen).toEqual([['other', '→', 'other', 'x']]);
  });
});
