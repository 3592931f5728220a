# Sourced by the scripts beside it. `start_load TARGETS SERIES [INTERVAL]` starts pyrite-loadgen
# (TARGETS targets of SERIES series of the mixed profile) in the current directory, waits until
# it listens, and writes prometheus.yml scraping every target every INTERVAL (default 15s);
# `$targets` is its pid. `$loadgen` must name the pyrite-loadgen binary.
start_load() {
  "$loadgen" --targets "$1" --series "$2" --profile mixed >targets.txt 2>&1 &
  targets=$!
  for _ in $(seq 120); do grep -q ready targets.txt && break; sleep 1; done
  {
    echo "scrape_configs:"
    echo "  - job_name: load"
    echo "    scrape_interval: ${3:-15s}"
    echo "    static_configs:"
    echo "      - targets:"
    grep '^127\.' targets.txt | sed 's/^/          - /'
  } >prometheus.yml
}
