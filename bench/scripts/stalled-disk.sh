#!/usr/bin/env bash
# A stalled disk: Pyrite's data directory on a 300 MiB ext4 file system (a loop device), frozen
# with fsfreeze for FREEZE seconds while Pyrite scrapes 20 loadgen targets (1,000 series of the
# mixed profile each) every second, with two-minute blocks so that housekeeping runs every 30 s.
# `/-/healthy`, an instant query and `/metrics` are asked every 2 s from 10 s before the freeze
# to 10 s after it (curl, 30 s limit). Prints the slowest answer and how many took over a
# second, while frozen and around it, then the scraped samples of the minute after the thaw.
# Usage (root): stalled-disk.sh PYRITE_BINARY [FREEZE]. Needs target/release/pyrite-loadgen,
# mkfs.ext4, fsfreeze, a loop device and the free port 19295.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/load.sh
pyrite=$(realpath "$1")
freeze=${2:-75}
loadgen=$(realpath target/release/pyrite-loadgen)
dir=$(mktemp -d)
mnt="$dir/mnt"
mkdir "$mnt"
trap 'fsfreeze -u "$mnt" 2>/dev/null || true; kill ${targets:-} ${pp:-} 2>/dev/null || true; wait 2>/dev/null || true; umount "$mnt" 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
truncate -s 300M image
mkfs.ext4 -q -F image
mount -o loop image "$mnt"
start_load 20 1000 1s
"$pyrite" --config.file=prometheus.yml --storage.tsdb.path="$mnt/data" --web.listen-address=127.0.0.1:19295 \
  --storage.tsdb.min-block-duration=2m --storage.tsdb.max-block-duration=2m --log.level=info >pyrite.log 2>&1 &
pp=$!
sleep 150
url=http://127.0.0.1:19295
probe() { # phase: one round of the three requests, each "phase seconds" on its own line
  for path in /-/healthy '/api/v1/query?query=count(up)' /metrics; do
    printf '%s %s\n' "$1" "$(curl -s -o /dev/null -m 30 -w '%{time_total}' "$url$path" || echo 30)"
  done
}
for _ in 1 2 3 4 5; do probe before; sleep 2; done >times.txt
fsfreeze -f "$mnt"
end=$((SECONDS + freeze))
while [ $SECONDS -lt $end ]; do probe frozen; sleep 2; done >>times.txt
fsfreeze -u "$mnt"
for _ in 1 2 3 4 5; do probe after; sleep 2; done >>times.txt
for phase in before frozen after; do
  awk -v p=$phase '$1 == p { n++; if ($2 > max) max = $2; if ($2 > 1) slow++ }
    END { printf "%-7s requests %3d  slowest %7.3f s  over 1 s: %d\n", p, n, max, slow }' times.txt
done
sleep 50
curl -s "$url/api/v1/query" --data-urlencode 'query=sum(count_over_time(up[1m]))' | sed 's/^/scrapes in the minute after the thaw (20 targets every second): /'
echo
grep -E 'disk (does not answer|answers again)' pyrite.log | cut -c1-160 || true
