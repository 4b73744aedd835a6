#!/usr/bin/env bash
# Start the web server and the django-q2 worker together; Ctrl-C (or either one exiting) stops both.
set -euo pipefail
PY="${PY:-.venv/bin/python}"
ADDR="${ADDR:-127.0.0.1:8000}"
pids=()
descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}
cleanup() {
  trap - INT TERM EXIT
  local all=() pid
  for pid in "${pids[@]}"; do all+=("$pid" $(descendants "$pid")); done
  kill -TERM "${all[@]}" 2>/dev/null || true
  # A dispatch task can hold a worker for up to a minute. Its items are leased and come back
  # on their own, so after a short grace period nothing is lost by stopping it hard.
  for _ in $(seq 1 20); do
    kill -0 "${all[@]}" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL "${all[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT
"$PY" manage.py qcluster &
pids+=($!)
"$PY" manage.py runserver "$ADDR" --noreload &
pids+=($!)
core=("${pids[@]}")  # the platform runs as long as both of these do
echo "web: http://$ADDR/admin/  worker: django-q2 qcluster  (Ctrl-C stops both)"
if [ "${DEMO_TRAFFIC:-0}" = "1" ]; then
  # Once the web server answers, send the demo tenant a few donations and follow them through.
  (
    for _ in $(seq 1 60); do
      "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "http://$ADDR/admin/login/" 2>/dev/null && break
      sleep 1
    done
    "$PY" manage.py demo_traffic --base-url "http://$ADDR" || echo "demo: traffic did not complete (see above)"
  ) &
  pids+=($!)
fi
wait -n "${core[@]}"
