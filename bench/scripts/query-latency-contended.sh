#!/usr/bin/env bash
# One query's latency on Pyrite and on Prometheus, idle and on a contended machine: both scrape
# the same 100 loadgen targets (1,000 series of the mixed profile each, every 15 s); after 90 s
# the query runs ROUNDS times against each server in turn, then again with HOGS busy loops
# competing for the CPUs. Prints each server's median, 90th percentile and minimum.
# Usage: query-latency-contended.sh PYRITE_BINARY [HOGS] [ROUNDS] [QUERY]; the default query is
# the dashboard's regex selection. Needs target/release/pyrite-loadgen, Debian's prometheus,
# python3, and free ports 19293-19294.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/load.sh
pyrite=$(realpath "$1")
hogs=${2:-4}
rounds=${3:-40}
query=${4:-'sum(rate(http_requests_total{handler=~"/api/[12]", status=~"5.."}[5m]))'}
loadgen=$(realpath target/release/pyrite-loadgen)
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
start_load 100 1000
"$pyrite" --config.file prometheus.yml --web.listen-address 127.0.0.1:19293 --storage.tsdb.path pyrite >pyrite.log 2>&1 &
prometheus --config.file prometheus.yml --web.listen-address 127.0.0.1:19294 --storage.tsdb.path prometheus >prometheus.log 2>&1 &
sleep 90
measure() {
  python3 - "$query" "$rounds" "$1" <<'PY'
import statistics, sys, time, urllib.parse, urllib.request
query, rounds, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
servers = {"pyrite": 19293, "prometheus": 19294}
times = {name: [] for name in servers}
for _ in range(rounds):
    for name, port in servers.items():
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        started = time.perf_counter()
        urllib.request.urlopen(url, timeout=60).read()
        times[name].append(time.perf_counter() - started)
    time.sleep(0.1)
for name, t in times.items():
    t.sort()
    print(f"{label} {name}: median {statistics.median(t) * 1000:.1f} ms, "
          f"p90 {t[int(len(t) * 0.9)] * 1000:.1f} ms, min {t[0] * 1000:.1f} ms")
PY
}
measure idle
for _ in $(seq "$hogs"); do sh -c 'while :; do :; done' & done
sleep 2
measure "$hogs busy loops"
