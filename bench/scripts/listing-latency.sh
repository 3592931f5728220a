#!/usr/bin/env bash
# Latency of the listings Grafana's label browser and variables ask for (`/api/v1/labels`,
# `/api/v1/label/NAME/values`, with and without `match[]`), Pyrite beside Prometheus on the same
# load: each scrapes the same 300 loadgen targets (1,000 series of the mixed profile each, every
# 15 s); after WARMUP seconds, each path is asked ROUNDS times of each server in turn. Prints each
# server's median and the ratio. Usage: listing-latency.sh PYRITE_BINARY [ROUNDS] [WARMUP]. Needs
# target/release/pyrite-loadgen, /usr/bin/prometheus, curl, and free ports 19293-19294.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/load.sh
pyrite=$(realpath "$1")
rounds=${2:-20}
warmup=${3:-60}
loadgen=$(realpath target/release/pyrite-loadgen)
dir=$(mktemp -d)
trap 'kill ${targets:-} ${pp:-} ${pu:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
start_load 300 1000
"$pyrite" --config.file=prometheus.yml --storage.tsdb.path=data-p --web.listen-address=127.0.0.1:19293 --log.level=warn &
pp=$!
/usr/bin/prometheus --config.file=prometheus.yml --storage.tsdb.path=data-u --web.listen-address=127.0.0.1:19294 \
  --log.level=warn 2>/dev/null &
pu=$!
sleep "$warmup"
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
echo "path pyrite_ms prometheus_ms pyrite/prometheus ($rounds rounds each)"
for path in /api/v1/labels /api/v1/label/__name__/values /api/v1/label/instance/values \
  '/api/v1/label/handler/values?match[]=http_requests_total' '/api/v1/labels?match[]=http_requests_total'; do
  for port in 19293 19294; do
    for _ in $(seq "$rounds"); do
      curl -s -g -o /dev/null -w '%{time_total}\n' "127.0.0.1:$port$path"
    done | median >"ms-$port"
  done
  p=$(awk '{print $1 * 1000}' ms-19293)
  u=$(awk '{print $1 * 1000}' ms-19294)
  echo "$path $p $u $(echo "scale=2; $p / $u" | bc)"
done
