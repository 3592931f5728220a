#!/usr/bin/env bash
# Ten million series on one Pyrite: 5,000 loadgen targets x 2,000 series of the mixed profile,
# scraped every 60 s (10,000 targets would take 20,000 file descriptors on the loadgen's side).
# Waits until every series is in the head and two more scrape rounds went by, then runs each
# dashboard query (`pyrite_loadgen::drive::DASHBOARD`) twice, one after the other. Prints the
# head's series, CPU seconds and RSS as it goes, each query's time, and
# VmHWM (peak RSS) after each. `--query.max-samples` is raised as the compare raises it: the 1 h
# range over 10M series counts far past the default. Usage: ten-million.sh [PYRITE_BINARY]. Needs
# target/release/pyrite-loadgen, 20,000 file descriptors and a free port 19293.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/load.sh
pyrite=$(realpath "${1:-target/release/pyrite}")
loadgen=$(realpath target/release/pyrite-loadgen)
dir=$(mktemp -d)
trap 'kill ${server:-} ${targets:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
start_load 5000 2000 60s
"$pyrite" --config.file=prometheus.yml --storage.tsdb.path=data --web.listen-address=127.0.0.1:19293 \
  --query.max-samples=2000000000 \
  --log.level=warn &
server=$!
metric() { curl -s 127.0.0.1:19293/metrics | awk -v m="$1" '$1 == m {print $2}'; }
status() {
  local ticks
  ticks=$(awk '{print $14 + $15}' "/proc/$server/stat")
  echo "t=$(($(date +%s) - started))s head_series=$(metric prometheus_tsdb_head_series)" \
    "cpu=$((ticks / 100))s $(grep -E 'VmRSS|VmHWM' "/proc/$server/status" | tr -s ' \t\n' ' ')"
}
started=$(date +%s)
until [ "$(metric prometheus_tsdb_head_series)" -ge 10000000 ] 2>/dev/null; do
  sleep 15
  status
done
sleep 120
status
now=$(date +%s)
while IFS=$'\t' read -r name query range; do
  if [ "$range" = true ]; then
    path=query_range
    extra=(--data-urlencode "start=$((now - 3600))" --data-urlencode "end=$now" --data-urlencode step=15)
  else
    path=query
    extra=(--data-urlencode "time=$now")
  fi
  for run in 1 2; do
    took=$(curl -s -o answer.json -w '%{time_total}' --max-time 600 --data-urlencode "query=$query" "${extra[@]}" \
      "127.0.0.1:19293/api/v1/$path")
    echo "$name run $run: ${took} s, $(head -c 120 answer.json | tr -d '\n'), $(grep VmHWM "/proc/$server/status" | tr -s ' \t')"
  done
done <<'EOF'
sum_rate_by_status	sum by (status) (rate(http_requests_total[5m]))	false
histogram_p99	histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))	false
topk_10	topk(10, rate(http_requests_total[5m]))	false
regex_selection	sum(rate(http_requests_total{handler=~"/api/[12]", status=~"5.."}[5m]))	false
count_all	count({__name__=~".+"})	false
range_1h_sum_rate	sum by (handler) (rate(http_requests_total[5m]))	true
EOF
status
