#!/usr/bin/env bash
# Server CPU per dashboard query, two Pyrite builds side by side on the same load: each scrapes
# the same 300 loadgen targets (1,000 series of the mixed profile each, every 15 s); after
# WARMUP seconds, each query runs ROUNDS times against each server in turn, at the present, and
# each server's CPU for its own query is read from /proc/PID/stat (utime + stime). Each server's
# CPU over the warm-up, scraping alone, is printed first.
# Usage: query-cpu-ab.sh BASE_BINARY NEW_BINARY [ROUNDS] [WARMUP]. Needs
# target/release/pyrite-loadgen, curl, bc, and free ports 19291-19292.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/load.sh
base=$(realpath "$1")
new=$(realpath "$2")
rounds=${3:-8}
warmup=${4:-330}
loadgen=$(realpath target/release/pyrite-loadgen)
dir=$(mktemp -d)
trap 'kill ${targets:-} ${pa:-} ${pb:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
start_load 300 1000
serve() { "$1" --config.file=prometheus.yml --storage.tsdb.path="data-$2" --web.listen-address="127.0.0.1:$2" --log.level=warn & }
serve "$base" 19292
pa=$!
serve "$new" 19291
pb=$!
sleep "$warmup"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Scraping alone, before any query: each server's CPU since its start.
echo "warm-up (scraping only): base $(($(cpu $pa) * 10)) ms, new $(($(cpu $pb) * 10)) ms"
ask() { # port query range
  local now
  now=$(date +%s.%N)
  if [ "$3" = 1 ]; then
    curl -s -o /dev/null --get --data-urlencode "query=$2" --data-urlencode "start=$(echo "$now - 3600" | bc)" \
      --data-urlencode "end=$now" --data-urlencode step=15 "127.0.0.1:$1/api/v1/query_range"
  else
    curl -s -o /dev/null --get --data-urlencode "query=$2" "127.0.0.1:$1/api/v1/query"
  fi
}
echo "query base_ms new_ms new/base (server CPU per query, $rounds rounds)"
while IFS='|' read -r name query range; do
  ca=0 cb=0
  for _ in $(seq "$rounds"); do
    c0=$(cpu $pa); ask 19292 "$query" "$range"; ca=$((ca + $(cpu $pa) - c0))
    c0=$(cpu $pb); ask 19291 "$query" "$range"; cb=$((cb + $(cpu $pb) - c0))
  done
  echo "$name $((ca * 10 / rounds)) $((cb * 10 / rounds)) $(echo "scale=2; $cb / ($ca + (($ca == 0)))" | bc)"
done <<'QUERIES'
sum_rate_by_status|sum by (status) (rate(http_requests_total[5m]))|0
histogram_p99|histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))|0
topk_10|topk(10, rate(http_requests_total[5m]))|0
regex_selection|sum(rate(http_requests_total{handler=~"/api/[12]", status=~"5.."}[5m]))|0
count_all|count({__name__=~".+"})|0
range_1h_sum_rate|sum by (handler) (rate(http_requests_total[5m]))|1
QUERIES
