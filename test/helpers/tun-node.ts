/**
 * A command prefix that runs its command in a private mount namespace where /dev/net/tun is
 * world-readable and writable (mode 0666), as udev makes it on common distributions and as a
 * container gets it through a device mount. Some hosts (this CI's among them) have a 0600 node,
 * where an unprivileged uid cannot open the clone device at all, whatever its capabilities: tests
 * that run synfin as its own uid need the common case, without changing the host's node.
 *
 * The fresh node is made under /dev (devtmpfs allows device nodes; /tmp may be nodev), bound over
 * /dev/net/tun in the new namespace only, and unlinked at once (the bind mount keeps it alive).
 */
export const WITH_OPEN_TUN_NODE: readonly string[] = [
  'unshare',
  '--mount',
  '--propagation',
  'private',
  'sh',
  '-c',
  'n=$(mktemp -u /dev/synfin-tun.XXXXXX) && mknod -m 0666 "$n" c 10 200 && mount --bind "$n" /dev/net/tun && rm -f "$n" && exec "$0" "$@"',
];
