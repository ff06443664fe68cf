#!/usr/bin/env bash
# Operator start-up, plain and ReadyToRun: publishes both into a temporary directory, then starts
# each RUNS times, alternating, and prints every start (process start to the first answered
# /health, in ms) and the medians. SQLite in a temporary data directory by default; with
# OpenPurse__Operator__DatabaseProvider=postgresql and OpenPurse__Operator__ConnectionString set,
# on that database. Run it from the repository root on a quiet machine:
#
#   eng/measure-startup.sh 12
set -euo pipefail

runs=${1:-12}
port=${PORT:-5999}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

dotnet publish src/OpenPurse.Operator -c Release -o "$work/plain" > /dev/null
dotnet publish src/OpenPurse.Operator -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o "$work/readytorun" > /dev/null

start_once() {
  local started answered pid
  started=$(date +%s%N)
  OpenPurse__Operator__DataDirectory="$work/data" OpenPurse__Operator__CreateVaultIfMissing=true \
    OpenPurse__Operator__Urls="http://127.0.0.1:$port" Logging__LogLevel__Default=Warning \
    dotnet "$1/openpurse-operator.dll" serve > "$work/node.log" 2>&1 &
  pid=$!
  until curl -s -o /dev/null "http://127.0.0.1:$port/health"; do
    kill -0 "$pid" 2> /dev/null || { cat "$work/node.log" >&2; exit 1; }
    sleep 0.005
  done
  answered=$(date +%s%N)
  kill "$pid"
  wait "$pid" 2> /dev/null || true
  echo $(((answered - started) / 1000000))
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# The first start makes the vault and migrates the registry: not counted.
start_once "$work/plain" > /dev/null
: > "$work/plain.ms"
: > "$work/readytorun.ms"
for _ in $(seq "$runs"); do
  start_once "$work/plain" >> "$work/plain.ms"
  start_once "$work/readytorun" >> "$work/readytorun.ms"
done

for build in plain readytorun; do
  echo "$build: $(tr '\n' ' ' < "$work/$build.ms")ms; median $(median < "$work/$build.ms") ms"
done
