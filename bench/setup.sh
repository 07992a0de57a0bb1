#!/usr/bin/env bash
# Installs what `npm run bench` drives besides synfin (Debian/Ubuntu, as root):
#   iperf3 (bulk throughput), wrk + nginx-light (HTTP), haproxy (the relay baseline: TCP mode, one
#   thread), redis-server + redis-tools (redis-benchmark: request/response), gcc +
#   libnetfilter-queue-dev + iptables (the benchmark's C tools and the loss/delay impairer),
#   iproute2 (ip, nstat, ss), curl; and for the floor scripts (bench/connection-floor.mjs,
#   request-floor.mjs, connect-breakdown.mjs): tcpdump, bpftrace (system calls per unit; it needs
#   tracefs, mounted here when missing) and linux-perf (perf record -g).
# The benchmark starts nginx, haproxy and redis-server itself, in its own namespaces: the packages'
# services are kept from starting during the install (policy-rc.d), so nothing listens on the host
# afterwards.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/setup.sh: run as root (apt-get install)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# bpftrace attaches to tracepoints through tracefs, which a container may not have mounted.
if [ -d /sys/kernel/tracing ] && [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "bench/setup.sh: could not mount tracefs (bpftrace will not attach)" >&2
fi
packages=(iperf3 wrk nginx-light haproxy redis-server redis-tools gcc libc6-dev libnetfilter-queue-dev iptables iproute2 curl tcpdump bpftrace linux-perf strace)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "bench/setup.sh: everything is installed"
  exit 0
fi
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bench/setup.sh: installed ${missing[*]}"
