#!/usr/bin/env bash
# Sidecar routing for synfin: in a network namespace shared by an app and synfin (a Kubernetes
# pod, a compose service with network_mode "service:..."), send the app's TCP through synfin's
# TUN device while synfin's own upstream sockets, and the replies of connections that came in from
# outside, keep the ordinary routes.
#
#   sidecar-routing.sh [--tun NAME] [--uid UID] [--table N] [--mark MARK] [--no-ipv6]
#                      [--include CIDR]... [--exclude CIDR]... [--exclude-port PORT]...
#   sidecar-routing.sh --remove [--delete-tun] [same options]
#
# Policy rules, per address family (IPv4, and IPv6 unless --no-ipv6, or IPv6 is off on the device):
#   pref 100  uidrange UID-UID lookup main        synfin's own sockets use the main table
#   pref 101  uidrange UID-UID unreachable        ... and never fall through into the TUN table
#   pref 110  to 127.0.0.0/8 (::1) lookup local   loopback stays local
#   pref 120  fwmark MARK/MARK lookup main        packets of marked connections (below) leave normally
#   pref 150  to CIDR lookup main                 --exclude: destinations kept off the device
#   pref 150  ipproto tcp dport PORT lookup main  --exclude-port: destination ports kept off it
#   pref 200  ipproto tcp lookup TABLE            every other TCP packet goes to TABLE, whose one
#   route     default dev TUN table TABLE         route is the TUN device, where synfin reads it
# With --include, pref 200 is one rule per included CIDR (to CIDR ipproto tcp lookup TABLE)
# instead of the catch-all: only those destinations go through synfin (a family with no
# included CIDR keeps its TCP off the device).
# The kernel's own "from all lookup local" rule (pref 0) still comes first, so traffic to the
# namespace's own addresses and synfin's packets coming back out of the TUN device stay local.
#
# Which connections are marked is decided by conntrack, never by port (nftables table
# "inet synfin"): a TCP connection is marked (ct mark |= MARK) when
#   - its first packet arrives on an interface other than lo and the TUN device (a connection from
#     outside: the app's own server, synfin's metrics port, a packet for a port with no socket), or
#   - its first packet is sent by a socket of uid UID (synfin's upstream connections).
# Every later packet of a marked connection gets the mark (meta mark |= MARK) as it enters or
# leaves, so replies are routed by pref 120 whichever socket, or none, sends them: the app's
# server, and the kernel's own packets for synfin's connections (the ACK of a TIME-WAIT socket, a
# RST for a segment that has no socket any more), which carry uid 0 and would otherwise match
# pref 200. A process of the pod that binds a local port (8080, 9477...) and connects out starts a
# new, unmarked connection from inside: it goes through synfin like any other. A bare SYN sent
# from inside by any uid but UID clears the mark of the conntrack entry it lands on: conntrack
# replaces an entry in TIME_WAIT or CLOSE on a new SYN by itself, but it accepts a SYN in the
# reply direction of an inbound entry still in SYN_SENT (a simultaneous open, e.g. onto a SYN from
# outside that a full listener dropped), which would otherwise carry the inbound mark out. With net.ipv4.tcp_fwmark_accept=1 (set here when /proc/sys is writable) sockets accepted
# from outside carry the mark themselves, so their route (and MSS) is the real interface's from
# the SYN-ACK on; without it each of their packets is rerouted in the output hook.
#
# The TUN device is created (persistent, owned by UID so synfin can attach to it without any
# capability) when missing, and set up: a route needs an up device. synfin attaches to it with
# `--tun NAME` and changes nothing on it. A strict IPv4 rp_filter is made loose
# (net.ipv4.conf.all.rp_filter=2): see ensure_loose_rp_filter.
#
# Idempotent: every rule is added only when missing, the route and the nftables table are
# replaced (atomically), and rules of the same shape left by an earlier run with other options
# (another uid or mark, or the source-port rules of earlier versions) are removed.
# --remove deletes the rules, the route and the nftables table (and the device with --delete-tun);
# it succeeds when there is nothing to remove.
#
# --metrics-port and --keep-port are still accepted and do nothing: inbound connections are
# recognised by conntrack now, whatever their port.
#
# Needs CAP_NET_ADMIN in the namespace (root in an init container), ip (iproute2) and nft
# (nftables). Exit codes: 0 done, 1 a command failed, 2 bad usage.
set -euo pipefail

PRIO_UID=100
PRIO_UID_GUARD=101
PRIO_LOOPBACK=110
PRIO_MARK=120
PRIO_EXCLUDE=150
PRIO_TCP=200
NFT_TABLE=synfin

tun="${SYNFIN_TUN:-synfin0}"
uid="${SYNFIN_ROUTING_UID:-10477}"
table="${SYNFIN_ROUTING_TABLE:-100}"
mark="${SYNFIN_ROUTING_MARK:-0x100000}"
ignored_ports=0
ipv6=1
mode=setup
delete_tun=0
# Lists may come from the environment (a ConfigMap), separated by commas or spaces.
IFS=", " read -r -a includes <<<"${SYNFIN_ROUTING_INCLUDE:-}"
IFS=", " read -r -a excludes <<<"${SYNFIN_ROUTING_EXCLUDE:-}"
IFS=", " read -r -a exclude_ports <<<"${SYNFIN_ROUTING_EXCLUDE_PORTS:-}"

prog="${0##*/}"

usage() {
  cat <<EOF
usage: $prog [--tun NAME] [--uid UID] [--table N] [--mark MARK] [--no-ipv6]
       $prog [--include CIDR]... [--exclude CIDR]... [--exclude-port PORT]... [options as above]
       $prog --remove [--delete-tun] [options as above]

Routes every TCP connection the processes in this network namespace open through synfin's TUN
device, except synfin's own (by uid) and loopback. Connections that come in from outside, and
synfin's own, are marked by conntrack: their packets (replies, and the kernel's ACKs and RSTs for
them) use the ordinary routes, whatever their ports.

  --tun NAME          synfin's TUN device (default \$SYNFIN_TUN or synfin0); created if missing
  --uid UID           the uid synfin runs as (default \$SYNFIN_ROUTING_UID or 10477)
  --table N           routing table for the app's TCP (default \$SYNFIN_ROUTING_TABLE or 100)
  --mark MARK         the packet and conntrack mark bits of connections kept off the device
                      (default \$SYNFIN_ROUTING_MARK or 0x100000); other bits are left alone
  --no-ipv6           IPv4 rules only
  --include CIDR      only TCP to these destinations goes through synfin (repeatable; default
                      all; also \$SYNFIN_ROUTING_INCLUDE, comma-separated)
  --exclude CIDR      TCP to these destinations keeps the ordinary route, off synfin (repeatable;
                      also \$SYNFIN_ROUTING_EXCLUDE, comma-separated)
  --exclude-port PORT TCP to this destination port keeps the ordinary route (repeatable; also
                      \$SYNFIN_ROUTING_EXCLUDE_PORTS, comma-separated)
  --remove            remove the rules, the route and the nftables table instead
  --delete-tun        with --remove: delete the TUN device too
  --metrics-port PORT, --keep-port PORT
                      accepted for compatibility, no effect: inbound connections are recognised
                      by conntrack, not by port
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
    --mark) need_value "$@"; mark="$2"; shift 2 ;;
    --metrics-port | --keep-port) need_value "$@"; check_port "$1" "$2"; ignored_ports=1; shift 2 ;;
    --include) need_value "$@"; includes+=("$2"); shift 2 ;;
    --exclude) need_value "$@"; excludes+=("$2"); shift 2 ;;
    --exclude-port) need_value "$@"; exclude_ports+=("$2"); shift 2 ;;
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
[[ "$mark" =~ ^(0x[0-9A-Fa-f]{1,8}|[0-9]{1,10})$ ]] && [ "$((mark))" -ge 1 ] && [ "$((mark))" -le 4294967295 ] ||
  die_usage "--mark: \"$mark\" is not a mark (1-0xffffffff)"
check_cidr() {
  [[ "$2" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/([0-9]|[12][0-9]|3[0-2])$ ]] ||
    [[ "$2" =~ ^[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*/([0-9]{1,2}|1[01][0-9]|12[0-8])$ ]] ||
    die_usage "$1: \"$2\" is not a CIDR (ADDRESS/PREFIX)"
}
for c in ${includes[@]+"${includes[@]}"}; do check_cidr --include "$c"; done
for c in ${excludes[@]+"${excludes[@]}"}; do check_cidr --exclude "$c"; done
for p in ${exclude_ports[@]+"${exclude_ports[@]}"}; do check_port --exclude-port "$p"; done
[ "$delete_tun" -eq 0 ] || [ "$mode" = remove ] || die_usage "--delete-tun only goes with --remove"

command -v ip >/dev/null 2>&1 || { echo "$prog: ip (iproute2) is not installed" >&2; exit 1; }
if [ "$mode" = setup ]; then
  command -v nft >/dev/null 2>&1 || { echo "$prog: nft (nftables) is not installed" >&2; exit 1; }
fi

# The mark as ip rule and nft print it (lower-case hex), and its complement for clearing it.
mark="$(printf '0x%x' "$((mark))")"
unmark="$(printf '0x%x' "$((~mark & 0xffffffff))")"

# IPv6 too, unless told otherwise or the kernel has none. Setup also needs IPv6 enabled on the
# device (Docker disables it in containers of networks without IPv6): a route cannot use it else.
families=(-4)
if [ "$ipv6" -eq 1 ] && [ -d /proc/sys/net/ipv6 ]; then families+=(-6); fi

log() {
  echo "$prog: $*" >&2
}

[ "$ignored_ports" -eq 0 ] || log "--metrics-port/--keep-port have no effect any more: inbound connections are marked by conntrack, whatever their port"

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

# Marks of our fwmark rules ("fwmark M/M lookup main") at PRIO, as "M/M".
fwmarks_at() {
  ip "$1" rule show pref "$2" | sed -n 's/.* fwmark \(0x[0-9a-f]*\/0x[0-9a-f]*\) lookup main.*/\1/p'
}

# Source ports of the rules earlier versions of this script made at PRIO ("ipproto tcp sport N
# lookup main"): removed on setup and --remove.
sport_rules_at() {
  ip "$1" rule show pref "$2" | sed -n 's/.* ipproto tcp sport \([0-9]*\) lookup main.*/\1/p'
}

# cidrs_of FAMILY CIDR...: those of the family (IPv6 ones contain a colon).
cidrs_of() {
  local fam="$1" c
  shift
  for c in "$@"; do
    case "$c" in
      *:*) [ "$fam" = -6 ] && echo "$c" ;;
      *) [ "$fam" = -4 ] && echo "$c" ;;
    esac
  done
  return 0
}

# reconcile_pref FAMILY PRIO SPEC...: the rules at PRIO become exactly the SPECs (each one
# string of `ip rule` words, as `ip rule show` prints them: a host address without /32 or
# /128). Compared line by line: `ip rule show` takes selectors as filters but would also list
# a rule that has more of them. New ones are added before stale ones go, so a re-run with other
# options never leaves a moment without them.
reconcile_pref() {
  local fam="$1" prio="$2" spec have want=$'\n' missing=()
  shift 2
  have=$'\n'"$(ip "$fam" rule show pref "$prio" | sed 's/^[0-9]*:[[:space:]]*from all //')"$'\n'
  for spec in "$@"; do
    spec="$(sed -E 's#^to ([0-9.]+)/32 #to \1 #; s#^to ([0-9a-fA-F:]+)/128 #to \1 #' <<<"$spec")"
    want+="$spec"$'\n'
    case "$have" in *$'\n'"$spec"$'\n'*) ;; *) missing+=("$spec") ;; esac
  done
  for spec in ${missing[@]+"${missing[@]}"}; do
    # The kernel calls a new rule a duplicate when an existing one at the same priority has all
    # its selectors (the catch-all after "to CIDR" rules): then the stale ones go first.
    # shellcheck disable=SC2086 # SPEC is a list of words
    if ! ip "$fam" rule add $spec priority "$prio" 2>/dev/null; then
      remove_unwanted "$fam" "$prio" "$have" "$want"
      have=$'\n'
      ip "$fam" rule add $spec priority "$prio"
    fi
    log "added: ip $fam rule add $spec priority $prio"
  done
  remove_unwanted "$fam" "$prio" "$have" "$want"
}

# remove_unwanted FAMILY PRIO HAVE WANT: deletes the specs of HAVE not in WANT (newline lists).
remove_unwanted() {
  local spec
  while IFS= read -r spec; do
    [ -n "$spec" ] || continue
    case "$4" in *$'\n'"$spec"$'\n'*) continue ;; esac
    # shellcheck disable=SC2086
    ip "$1" rule del pref "$2" $spec
    log "removed: ip $1 rule del pref $2 $spec"
  done <<<"$3"
}

# delete_pref FAMILY PRIO: every rule at PRIO.
delete_pref() {
  while ip "$1" rule del pref "$2" 2>/dev/null; do
    log "removed: ip $1 rule del pref $2"
  done
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

# net.ipv4.tcp_fwmark_accept=1 (IPv4 and IPv6): a socket accepted from a marked SYN carries the
# mark, so its route lookups (SYN-ACK, MSS, every later packet) find the real interface at once.
# Best effort: without it the output hook reroutes each of its packets, which also works.
ensure_fwmark_accept() {
  local f=/proc/sys/net/ipv4/tcp_fwmark_accept
  [ -r "$f" ] && [ "$(cat "$f")" != 1 ] || return 0
  if (echo 1 >"$f") 2>/dev/null; then
    log "set net.ipv4.tcp_fwmark_accept=1: sockets accepted from outside carry the mark"
  else
    log "net.ipv4.tcp_fwmark_accept is 0 and /proc/sys is read-only: replies of inbound connections are rerouted packet by packet (set the sysctl for the pod to avoid it)"
  fi
}

ensure_tun() {
  if ! ip link show dev "$tun" >/dev/null 2>&1; then
    ip tuntap add dev "$tun" mode tun user "$uid"
    log "created TUN device $tun (owner uid $uid)"
  fi
  ip link set dev "$tun" up
}

# The conntrack marking (see the header), replaced atomically: the batch creates the table if
# missing, deletes it, and creates it anew in one transaction.
ensure_nft() {
  nft -f - <<EOF
table inet $NFT_TABLE
delete table inet $NFT_TABLE
table inet $NFT_TABLE {
  chain inbound {
    type filter hook prerouting priority mangle; policy accept;
    meta l4proto tcp ct state new iifname != { "lo", "$tun" } ct mark set ct mark or $mark
    ct mark and $mark == $mark meta mark set meta mark or $mark
  }
  chain outbound {
    type route hook output priority mangle; policy accept;
    meta l4proto tcp ct state new meta skuid $uid ct mark set ct mark or $mark
    meta l4proto tcp tcp flags & (syn | ack) == syn meta skuid != $uid ct mark set ct mark and $unmark
    meta skuid $uid accept
    ct mark and $mark == $mark meta mark set meta mark or $mark
  }
}
EOF
  log "nftables table inet $NFT_TABLE: connections from outside and of uid $uid marked $mark"
}

remove_nft() {
  command -v nft >/dev/null 2>&1 || return 0
  if nft list table inet "$NFT_TABLE" >/dev/null 2>&1; then
    nft delete table inet "$NFT_TABLE"
    log "removed: nftables table inet $NFT_TABLE"
  fi
}

setup_family() {
  local fam="$1" range="$uid-$uid" r p
  # Stale rules of our shape from an earlier run with another uid or mark, or an earlier version.
  for r in $(uidranges_at "$fam" "$PRIO_UID"); do
    [ "$r" = "$range" ] || delete_rule "$fam" "$PRIO_UID" uidrange "$r" lookup main
  done
  for r in $(uidranges_at "$fam" "$PRIO_UID_GUARD"); do
    [ "$r" = "$range" ] || delete_rule "$fam" "$PRIO_UID_GUARD" uidrange "$r" unreachable
  done
  for r in $(fwmarks_at "$fam" "$PRIO_MARK"); do
    [ "$r" = "$mark/$mark" ] || delete_rule "$fam" "$PRIO_MARK" fwmark "$r" lookup main
  done
  for p in $(sport_rules_at "$fam" "$PRIO_MARK"); do
    delete_rule "$fam" "$PRIO_MARK" ipproto tcp sport "$p" lookup main
  done
  # Exceptions first, the catch-all last: the app's TCP may reach the TUN device only once
  # synfin's own sockets and marked connections are guaranteed to bypass it.
  ensure_rule "$fam" "$PRIO_UID" uidrange "$range" lookup main
  ensure_action_rule "$fam" "$PRIO_UID_GUARD" unreachable uidrange "$range"
  ensure_rule "$fam" "$PRIO_LOOPBACK" to "$(loopback_of "$fam")" lookup local
  ensure_rule "$fam" "$PRIO_MARK" fwmark "$mark/$mark" lookup main
  local specs=() c
  for c in $(cidrs_of "$fam" ${excludes[@]+"${excludes[@]}"}); do specs+=("to $c lookup main"); done
  for p in ${exclude_ports[@]+"${exclude_ports[@]}"}; do specs+=("ipproto tcp dport $p lookup main"); done
  reconcile_pref "$fam" "$PRIO_EXCLUDE" ${specs[@]+"${specs[@]}"}
  ip "$fam" route replace default dev "$tun" table "$table"
  specs=()
  if [ "${#includes[@]}" -eq 0 ]; then
    specs=("ipproto tcp lookup $table")
  else
    for c in $(cidrs_of "$fam" "${includes[@]}"); do specs+=("to $c ipproto tcp lookup $table"); done
  fi
  reconcile_pref "$fam" "$PRIO_TCP" ${specs[@]+"${specs[@]}"}
}

remove_family() {
  local fam="$1" r p
  # The catch-all (or the included destinations) first, so nothing is sent into the table while
  # its exceptions are going away.
  delete_pref "$fam" "$PRIO_TCP"
  if ip "$fam" route del default dev "$tun" table "$table" 2>/dev/null; then
    log "removed: ip $fam route del default dev $tun table $table"
  fi
  for r in $(fwmarks_at "$fam" "$PRIO_MARK"); do
    delete_rule "$fam" "$PRIO_MARK" fwmark "$r" lookup main
  done
  for p in $(sport_rules_at "$fam" "$PRIO_MARK"); do
    delete_rule "$fam" "$PRIO_MARK" ipproto tcp sport "$p" lookup main
  done
  delete_pref "$fam" "$PRIO_EXCLUDE"
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
  ensure_fwmark_accept
  if [ "${#families[@]}" -gt 1 ] && [ "$(cat "/proc/sys/net/ipv6/conf/$tun/disable_ipv6" 2>/dev/null)" != 0 ]; then
    families=(-4)
    log "IPv6 is disabled on $tun: IPv4 only (IPv6 TCP, if the namespace has any, is not routed through synfin)"
  fi
  # The marking before the rules that route by it.
  ensure_nft
  for fam in "${families[@]}"; do setup_family "$fam"; done
  log "TCP of every uid but $uid goes through $tun (table $table); kept off it: loopback, connections from outside and synfin's own (mark $mark)"
else
  for fam in "${families[@]}"; do remove_family "$fam"; done
  remove_nft
  if [ "$delete_tun" -eq 1 ] && ip link show dev "$tun" >/dev/null 2>&1; then
    ip link delete dev "$tun"
    log "deleted TUN device $tun"
  fi
  log "routing through $tun removed"
fi
