#!/usr/bin/env bash
# Start the web server and the django-q2 worker together; Ctrl-C (or either one exiting) stops both.
set -euo pipefail
PY="${PY:-.venv/bin/python}"
ADDR="${ADDR:-127.0.0.1:8000}"
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT
"$PY" manage.py qcluster &
pids+=($!)
"$PY" manage.py runserver "$ADDR" --noreload &
pids+=($!)
echo "web: http://$ADDR/admin/  worker: django-q2 qcluster  (Ctrl-C stops both)"
wait -n "${pids[@]}"
