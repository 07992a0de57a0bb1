/**
 * synfin in front of a namespace (the demo, a host in front of a container) rather than inside it:
 * the app's sockets are in the app namespace's table, read with a sock_diag socket made in that
 * namespace (KernelSockets { netns }, native/socket-table). The ground truth is `ss` run inside it.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, expect, it } from 'vitest';
import { KernelSockets } from '../../src/observability/kernel-sockets.js';
import { parseAddress } from '../../src/wire/address.js';
import { destroyAllNetns, NetNs } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';

/** A server and a client of that namespace's loopback, connected, held open until stdin closes. */
const PAIR = `
const net = require('node:net');
const server = net.createServer((s) => { s.pause(); });
server.listen(0, '127.0.0.1', () => {
  const c = net.connect(server.address().port, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ local: c.localPort, remote: server.address().port }) + '\\n');
  });
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

describeIfTun('the app namespace table (KernelSockets with netns)', () => {
  afterAll(destroyAllNetns);

  it('reads the sockets of another network namespace, states and inodes as ss shows them there; its own namespace has none of them', async () => {
    const ns = NetNs.create();
    execFileSync('ip', ['-n', ns.name, 'link', 'set', 'lo', 'up']);
    const child = ns.spawn(process.execPath, ['-e', PAIR]);
    try {
      const line = await new Promise<string>((resolve, reject) => {
        child.stdout!.once('data', (d: Buffer) => resolve(d.toString()));
        child.once('exit', (code) => reject(new Error(`pair exited ${code}`)));
      });
      const { local, remote } = JSON.parse(line) as { local: number; remote: number };
      const lo = parseAddress('127.0.0.1')!;

      const theirs = new KernelSockets(() => 0, { netns: `/var/run/netns/${ns.name}` });
      const ours = new KernelSockets(() => 0);
      await Promise.all([theirs.refresh(), ours.refresh()]);
      expect(theirs.lastError).toBeNull();

      expect(theirs.stateOf(4, lo.words, local, lo.words, remote)).toBe('ESTABLISHED');
      expect(theirs.stateOf(4, lo.words, remote, lo.words, local)).toBe('ESTABLISHED');
      // `ss -tnie` in that namespace names the client socket's inode ("ino:N").
      const ss = execFileSync('ip', ['netns', 'exec', ns.name, 'ss', '-Htnie', `sport = :${local}`], { encoding: 'utf8' });
      const ino = Number(/ino:(\d+)/.exec(ss)?.[1]);
      expect(ino).toBeGreaterThan(0);
      expect(theirs.inodeOf(4, lo.words, local, lo.words, remote)).toBe(ino);
      // Our namespace's table is another one: the same tuple is not there (unless by chance a
      // socket of ours has it, which the inode tells apart).
      expect(ours.inodeOf(4, lo.words, local, lo.words, remote)).not.toBe(ino);
    } finally {
      child.stdin!.end();
      child.kill();
    }
  });

  it('a namespace that does not exist is an error naming it, at construction', () => {
    expect(() => new KernelSockets(() => 0, { netns: '/var/run/netns/sf-no-such-namespace' })).toThrow(
      /the network namespace \/var\/run\/netns\/sf-no-such-namespace: No such file or directory/,
    );
  });
});
