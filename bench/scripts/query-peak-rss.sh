#!/usr/bin/env bash
# Peak resident memory of one query over every series: each Pyrite binary given scrapes the same
# load (TARGETS loadgen targets x 1,000 series of the mixed profile, every 15 s) for 2 minutes,
# then answers the dashboard's 1 h range query and a 1 h range `count` of every series (241
# steps each), one after the other. Prints, per binary and query, the time taken and VmHWM (the
# process's peak RSS) before and after. Usage: query-peak-rss.sh TARGETS BINARY...
# Needs target/release/pyrite-loadgen and a free port 19292.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/load.sh
count=$1
shift
binaries=()
for b in "$@"; do binaries+=("$(realpath "$b")"); done
loadgen=$(realpath target/release/pyrite-loadgen)
dir=$(mktemp -d)
trap 'kill ${server:-} ${targets:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
start_load "$count" 1000
hwm() { awk '/VmHWM/ {print $2 / 1024 " MB"}' "/proc/$server/status"; }
for pyrite in "${binaries[@]}"; do
  rm -rf data
  "$pyrite" --config.file=prometheus.yml --storage.tsdb.path=data --web.listen-address=127.0.0.1:19292 \
    --log.level=warn &
  server=$!
  sleep 120
  series=$(curl -s 127.0.0.1:19292/metrics | awk '$1 == "prometheus_tsdb_head_series" {print $2}')
  echo "$pyrite: head_series=$series VmHWM=$(hwm)"
  now=$(date +%s)
  for query in 'sum by (handler) (rate(http_requests_total[5m]))' 'count({__name__=~".+"})'; do
    took=$(curl -s -o /dev/null -w '%{time_total}' --data-urlencode "query=$query" \
      --data-urlencode "start=$((now - 3600))" --data-urlencode "end=$now" --data-urlencode step=15 \
      127.0.0.1:19292/api/v1/query_range)
    echo "  $query: ${took} s, VmHWM=$(hwm)"
  done
  kill "$server"
  wait "$server" 2>/dev/null || true
done
