#!/usr/bin/env bash
# Resident memory of one Pyrite scraping 1M series (1,000 loadgen targets x 1,000 series of the
# mixed profile, every 15 s) with no queries: what the head, scrape caches and log hold at rest.
# Prints head series and RSS every 15 s for a minute. Usage: rss-at-rest.sh [PYRITE_BINARY]
# (default: target/release/pyrite). Needs target/release/pyrite-loadgen and a free port 19291.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/load.sh
pyrite=$(realpath "${1:-target/release/pyrite}")
loadgen=$(realpath target/release/pyrite-loadgen)
dir=$(mktemp -d)
trap 'kill ${server:-} ${targets:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
start_load 1000 1000
"$pyrite" --config.file=prometheus.yml --storage.tsdb.path=data --web.listen-address=127.0.0.1:19291 --log.level=warn &
server=$!
for t in 15 30 45 60; do
  sleep 15
  series=$(curl -s 127.0.0.1:19291/metrics | awk '$1 == "prometheus_tsdb_head_series" {print $2}')
  echo "t=${t}s head_series=$series $(grep -E 'VmRSS|RssAnon' /proc/$server/status | tr -s ' \t\n' ' ')"
done
