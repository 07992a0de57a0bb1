#!/usr/bin/env bash
# Sidecar routing for synfin: in a network namespace shared by an app and synfin (a Kubernetes
# pod, a compose service with network_mode "service:..."), send the app's TCP through synfin's
# TUN device while synfin's own upstream sockets keep the ordinary routes.
#
#   sidecar-routing.sh [--tun NAME] [--uid UID] [--table N] [--metrics-port PORT]
#                      [--keep-port PORT]... [--no-ipv6]
#   sidecar-routing.sh --remove [--delete-tun] [same options]
#
# Policy rules, per address family (IPv4, and IPv6 unless --no-ipv6, or IPv6 is off on the device):
#   pref 100  uidrange UID-UID lookup main        synfin's own sockets use the main table
#   pref 101  uidrange UID-UID unreachable        ... and never fall through into the TUN table
#   pref 110  to 127.0.0.0/8 (::1) lookup local   loopback stays local
#   pref 120  ipproto tcp sport PORT lookup main  replies from the metrics port (and --keep-port
#                                                 ports, e.g. the app's own server) leave normally
#   pref 200  ipproto tcp lookup TABLE            every other TCP packet goes to TABLE, whose one
#   route     default dev TUN table TABLE         route is the TUN device, where synfin reads it
# The kernel's own "from all lookup local" rule (pref 0) still comes first, so traffic to the
# namespace's own addresses and synfin's packets coming back out of the TUN device stay local.
#
# The TUN device is created (persistent, owned by UID so synfin can attach to it) when missing,
# and set up: a route needs an up device. synfin attaches to it with `--tun NAME`. A strict
# IPv4 rp_filter is made loose (net.ipv4.conf.all.rp_filter=2): see ensure_loose_rp_filter.
#
# Idempotent: every rule is added only when missing, the route is replaced, and rules of the same
# shape left by an earlier run with other options (another uid or keep-port) are removed.
# --remove deletes the rules and the route (and the device with --delete-tun); it succeeds when
# there is nothing to remove.
#
# Needs CAP_NET_ADMIN in the namespace (root in an init container). Exit codes: 0 done, 1 an ip
# command failed, 2 bad usage.
set -euo pipefail

PRIO_UID=100
PRIO_UID_GUARD=101
PRIO_LOOPBACK=110
PRIO_KEEP=120
PRIO_TCP=200

tun="${SYNFIN_TUN:-synfin0}"
uid="${SYNFIN_ROUTING_UID:-10477}"
table="${SYNFIN_ROUTING_TABLE:-100}"
metrics_port=9477
keep_ports=()
ipv6=1
mode=setup
delete_tun=0

prog="${0##*/}"

usage() {
  cat <<EOF
usage: $prog [--tun NAME] [--uid UID] [--table N] [--metrics-port PORT] [--keep-port PORT]... [--no-ipv6]
       $prog --remove [--delete-tun] [options as above]

Routes every TCP connection of the processes in this network namespace through synfin's TUN
device, except synfin's own (by uid), loopback, and replies from the metrics port and --keep-port
ports.

  --tun NAME          synfin's TUN device (default \$SYNFIN_TUN or synfin0); created if missing
  --uid UID           the uid synfin runs as (default \$SYNFIN_ROUTING_UID or 10477)
  --table N           routing table for the app's TCP (default \$SYNFIN_ROUTING_TABLE or 100)
  --metrics-port PORT synfin's HTTP port, kept off the TUN device (default 9477)
  --keep-port PORT    another local TCP server port whose replies must not enter the TUN device
                      (the app's own listening port, for example); repeatable
  --no-ipv6           IPv4 rules only
  --remove            remove the rules and the route instead
  --delete-tun        with --remove: delete the TUN device too
EOF
}

die_usage() {
  echo "$prog: $1" >&2
  echo "Try '$prog --help'." >&2
  exit 2
}

need_value() {
  [ "$#" -ge 2 ] && [ -n "$2" ] || die_usage "$1 needs a value"
}

is_uint() {
  case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac
}

check_port() {
  is_uint "$2" && [ "$2" -ge 1 ] && [ "$2" -le 65535 ] || die_usage "$1: \"$2\" is not a port (1-65535)"
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --tun) need_value "$@"; tun="$2"; shift 2 ;;
    --uid) need_value "$@"; uid="$2"; shift 2 ;;
    --table) need_value "$@"; table="$2"; shift 2 ;;
    --metrics-port) need_value "$@"; metrics_port="$2"; shift 2 ;;
    --keep-port) need_value "$@"; keep_ports+=("$2"); shift 2 ;;
    --no-ipv6) ipv6=0; shift ;;
    --remove) mode=remove; shift ;;
    --delete-tun) delete_tun=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument \"$1\"" ;;
  esac
done

[[ "$tun" =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die_usage "--tun: \"$tun\" is not a valid interface name"
is_uint "$uid" || die_usage "--uid: \"$uid\" is not a numeric uid"
[ "$uid" -ne 0 ] || die_usage "--uid: synfin must not run as root (uid 0): every root process would bypass the proxy"
is_uint "$table" && [ "$table" -ge 1 ] && [ "$table" -le 4294967295 ] ||
  die_usage "--table: \"$table\" is not a routing table number"
case "$table" in 253 | 254 | 255) die_usage "--table: $table is a reserved table (default, main, local)" ;; esac
check_port --metrics-port "$metrics_port"
for p in "${keep_ports[@]+"${keep_ports[@]}"}"; do check_port --keep-port "$p"; done
[ "$delete_tun" -eq 0 ] || [ "$mode" = remove ] || die_usage "--delete-tun only goes with --remove"

command -v ip >/dev/null 2>&1 || { echo "$prog: ip (iproute2) is not installed" >&2; exit 1; }

# Ports whose replies stay on the main table: the metrics port first, then --keep-port, no repeats.
ports=()
for p in "$metrics_port" "${keep_ports[@]+"${keep_ports[@]}"}"; do
  case " ${ports[*]+"${ports[*]}"} " in *" $p "*) ;; *) ports+=("$p") ;; esac
done

# IPv6 too, unless told otherwise or the kernel has none. Setup also needs IPv6 enabled on the
# device (Docker disables it in containers of networks without IPv6): a route cannot use it else.
families=(-4)
if [ "$ipv6" -eq 1 ] && [ -d /proc/sys/net/ipv6 ]; then families+=(-6); fi

log() {
  echo "$prog: $*" >&2
}

# rule_present FAMILY PRIO SELECTOR...: `ip rule show` filters by selector (iproute2 >= 4.x).
rule_present() {
  local fam="$1" prio="$2"
  shift 2
  [ -n "$(ip "$fam" rule show pref "$prio" "$@")" ]
}

ensure_rule() {
  local fam="$1" prio="$2"
  shift 2
  if ! rule_present "$fam" "$prio" "$@"; then
    ip "$fam" rule add "$@" priority "$prio"
    log "added: ip $fam rule add $* priority $prio"
  fi
}

# ensure_action_rule FAMILY PRIO ACTION SELECTOR...: a rule whose action (unreachable) cannot be
# used as a show filter; presence is judged by the selector at that priority.
ensure_action_rule() {
  local fam="$1" prio="$2" action="$3"
  shift 3
  if ! rule_present "$fam" "$prio" "$@"; then
    ip "$fam" rule add "$@" "$action" priority "$prio"
    log "added: ip $fam rule add $* $action priority $prio"
  fi
}

# delete_rule FAMILY PRIO SPEC...: deletes every copy; quiet when there is none.
delete_rule() {
  local fam="$1" prio="$2"
  shift 2
  while ip "$fam" rule del pref "$prio" "$@" 2>/dev/null; do
    log "removed: ip $fam rule del pref $prio $*"
  done
}

# Values of the uidrange rules at PRIO, as "A-B".
uidranges_at() {
  ip "$1" rule show pref "$2" | sed -n 's/.* uidrange \([0-9]*-[0-9]*\).*/\1/p'
}

# Source ports of our keep-port rules ("ipproto tcp sport N lookup main") at PRIO.
keep_ports_at() {
  ip "$1" rule show pref "$2" | sed -n 's/.* ipproto tcp sport \([0-9]*\) lookup main.*/\1/p'
}

loopback_of() {
  if [ "$1" = -6 ]; then echo ::1/128; else echo 127.0.0.0/8; fi
}

# Reverse-path filtering (IPv4). The kernel's reverse-path check runs a route lookup for the
# packet's source as uid 0, so for TCP it matches the catch-all rule and finds the TUN device. In
# strict mode (rp_filter=1) that drops every TCP packet arriving on the ordinary interface,
# replies to synfin's upstream sockets included. Loose mode (2) only asks that the source be
# routable at all. An interface's effective mode is max(conf/all, conf/IFACE), so all=2 makes
# every interface at least loose. Only a strict setting is changed; /proc/sys must be writable
# then (it is not in most containers: set the sysctl through the runtime, see deploy/README.md).
ensure_loose_rp_filter() {
  local all f strict=0
  all="$(cat /proc/sys/net/ipv4/conf/all/rp_filter 2>/dev/null)" || return 0
  [ "$all" -ge 2 ] && return 0
  for f in /proc/sys/net/ipv4/conf/*/rp_filter; do
    [ "$(cat "$f")" = 1 ] && strict=1
  done
  [ "$strict" -eq 1 ] || return 0
  if (echo 2 >/proc/sys/net/ipv4/conf/all/rp_filter) 2>/dev/null; then
    log "set net.ipv4.conf.all.rp_filter=2 (loose): strict reverse-path filtering drops replies to synfin's upstream sockets"
  else
    echo "$prog: strict reverse-path filtering (net.ipv4.conf.*.rp_filter=1) would drop replies to synfin's upstream sockets, and /proc/sys is read-only here: set net.ipv4.conf.all.rp_filter=2 for this network namespace (see deploy/README.md)" >&2
    exit 1
  fi
}

ensure_tun() {
  if ! ip link show dev "$tun" >/dev/null 2>&1; then
    ip tuntap add dev "$tun" mode tun user "$uid"
    log "created TUN device $tun (owner uid $uid)"
  fi
  ip link set dev "$tun" up
}

setup_family() {
  local fam="$1" range="$uid-$uid" r p
  # Stale rules of our shape from an earlier run with another uid or port list.
  for r in $(uidranges_at "$fam" "$PRIO_UID"); do
    [ "$r" = "$range" ] || delete_rule "$fam" "$PRIO_UID" uidrange "$r" lookup main
  done
  for r in $(uidranges_at "$fam" "$PRIO_UID_GUARD"); do
    [ "$r" = "$range" ] || delete_rule "$fam" "$PRIO_UID_GUARD" uidrange "$r" unreachable
  done
  for p in $(keep_ports_at "$fam" "$PRIO_KEEP"); do
    case " ${ports[*]} " in *" $p "*) ;; *) delete_rule "$fam" "$PRIO_KEEP" ipproto tcp sport "$p" lookup main ;; esac
  done
  # Exceptions first, the catch-all last: the app's TCP may reach the TUN device only once
  # synfin's own sockets are guaranteed to bypass it.
  ensure_rule "$fam" "$PRIO_UID" uidrange "$range" lookup main
  ensure_action_rule "$fam" "$PRIO_UID_GUARD" unreachable uidrange "$range"
  ensure_rule "$fam" "$PRIO_LOOPBACK" to "$(loopback_of "$fam")" lookup local
  for p in "${ports[@]}"; do
    ensure_rule "$fam" "$PRIO_KEEP" ipproto tcp sport "$p" lookup main
  done
  ip "$fam" route replace default dev "$tun" table "$table"
  ensure_rule "$fam" "$PRIO_TCP" ipproto tcp lookup "$table"
}

remove_family() {
  local fam="$1" r p
  # The catch-all first, so nothing is sent into the table while its exceptions are going away.
  delete_rule "$fam" "$PRIO_TCP" ipproto tcp lookup "$table"
  if ip "$fam" route del default dev "$tun" table "$table" 2>/dev/null; then
    log "removed: ip $fam route del default dev $tun table $table"
  fi
  for p in $(keep_ports_at "$fam" "$PRIO_KEEP"); do
    delete_rule "$fam" "$PRIO_KEEP" ipproto tcp sport "$p" lookup main
  done
  delete_rule "$fam" "$PRIO_LOOPBACK" to "$(loopback_of "$fam")" lookup local
  for r in $(uidranges_at "$fam" "$PRIO_UID_GUARD"); do
    delete_rule "$fam" "$PRIO_UID_GUARD" uidrange "$r" unreachable
  done
  for r in $(uidranges_at "$fam" "$PRIO_UID"); do
    delete_rule "$fam" "$PRIO_UID" uidrange "$r" lookup main
  done
}

if [ "$mode" = setup ]; then
  ensure_tun
  ensure_loose_rp_filter
  if [ "${#families[@]}" -gt 1 ] && [ "$(cat "/proc/sys/net/ipv6/conf/$tun/disable_ipv6" 2>/dev/null)" != 0 ]; then
    families=(-4)
    log "IPv6 is disabled on $tun: IPv4 only (IPv6 TCP, if the namespace has any, is not routed through synfin)"
  fi
  for fam in "${families[@]}"; do setup_family "$fam"; done
  log "TCP of every uid but $uid goes through $tun (table $table); kept local: loopback, sport ${ports[*]}"
else
  for fam in "${families[@]}"; do remove_family "$fam"; done
  if [ "$delete_tun" -eq 1 ] && ip link show dev "$tun" >/dev/null 2>&1; then
    ip link delete dev "$tun"
    log "deleted TUN device $tun"
  fi
  log "routing through $tun removed"
fi
