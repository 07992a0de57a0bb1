#!/bin/sh
# Writes a synfin --service-file from the cluster's Services: each Service's cluster IPs (both
# families of a dual-stack Service) and TCP ports, named NAMESPACE/NAME. Headless Services
# (clusterIP None), ExternalName Services and Services without a TCP port are left out.
#
#   deploy/services-from-kubectl.sh [-o FILE] [-n NAMESPACE] [-l SELECTOR]
#
#   -o FILE       write FILE (atomically: a synfin watching it never reads half a file);
#                 default: standard output
#   -n NAMESPACE  only this namespace (default: every namespace, kubectl get -A)
#   -l SELECTOR   only Services matching this label selector
#
# synfin takes at most 256 names: with more Services the script fails (exit 1) and says so;
# narrow it with -n or -l. Needs kubectl (or $KUBECTL) and python3. Run it again (from a CronJob
# or a loop) to keep the file current: synfin re-reads the file when it changes.
set -eu

out=""
scope="-A"
selector=""
while getopts "o:n:l:h" opt; do
  case "$opt" in
    o) out="$OPTARG" ;;
    n) scope="--namespace=$OPTARG" ;;
    l) selector="--selector=$OPTARG" ;;
    h) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [-o FILE] [-n NAMESPACE] [-l SELECTOR]" >&2; exit 2 ;;
  esac
done

json=$(mktemp)
trap 'rm -f "$json"' EXIT
# shellcheck disable=SC2086 # $selector is one word or nothing
"${KUBECTL:-kubectl}" get services "$scope" $selector -o json >"$json"

render() {
  python3 - "$json" <<'PY'
import json, sys

MAX_SERVICES = 256
doc = json.load(open(sys.argv[1]))
entries = []
names = set()
for item in sorted(doc.get("items", []), key=lambda i: (i["metadata"].get("namespace", ""), i["metadata"]["name"])):
    meta, spec = item["metadata"], item.get("spec", {})
    name = "%s/%s" % (meta.get("namespace", "default"), meta["name"])
    if spec.get("type") == "ExternalName":
        continue
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ips = [ip for ip in ips if ip and ip != "None"]
    ports = sorted({p["port"] for p in spec.get("ports", []) if p.get("protocol", "TCP") == "TCP"})
    if not ips or not ports:
        continue
    names.add(name)
    for ip in ips:
        entries.append((name, ip, ports))
if len(names) > MAX_SERVICES:
    sys.stderr.write("services-from-kubectl: %d Services with cluster IPs and TCP ports, more than synfin's %d names: narrow them with -n NAMESPACE or -l SELECTOR\n" % (len(names), MAX_SERVICES))
    sys.exit(1)
print("# synfin --service-file, from kubectl get services (deploy/services-from-kubectl.sh): %d services" % len(names))
if not entries:
    print("[]")
for name, ip, ports in entries:
    print("- name: %s" % json.dumps(name))
    print("  cidr: %s" % json.dumps(ip))
    print("  ports: [%s]" % ", ".join(str(p) for p in ports))
PY
}

if [ -z "$out" ]; then
  render
else
  tmp="$out.tmp.$$"
  if render >"$tmp"; then
    mv -f "$tmp" "$out"
  else
    rm -f "$tmp"
    exit 1
  fi
fi
