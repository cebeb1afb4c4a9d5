#!/usr/bin/env bash
# Times dghcore and PyTorch CPU on the same work with the same thread
# count, one after the other in one run, so their ratio is comparable on
# a shared machine (absolute times across runs are not).
#
#   tools/bench/sidebyside.sh [threads] [forward|dgh|brecq|all]
#
# Needs /usr/bin/python3 with torch (apt-get install python3-torch).
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${1:-2}
what=${2:-all}
py=/usr/bin/python3
export OMP_NUM_THREADS=$threads

run() { printf '\n== %s\n' "$*"; "$@"; }

if [[ $what == forward || $what == all ]]; then
	run go test -run '^$' -bench '^BenchmarkForward$' -benchtime 3x -cpu "$threads" ./layers/zoo/
	run $py tools/torchref/bench_forward.py --threads "$threads" --seconds 5
fi
if [[ $what == dgh || $what == all ]]; then
	run go test -run '^$' -bench '^BenchmarkDGHStep$' -benchtime 2x -cpu "$threads" -timeout 60m ./dgh/
	run $py tools/torchref/bench_dgh.py --threads "$threads" --steps 2
fi
if [[ $what == brecq || $what == all ]]; then
	run go test -run '^$' -bench '^BenchmarkReconstructionStep$' -benchtime 5x -cpu "$threads" ./brecq/
	run $py tools/torchref/bench_brecq.py --threads "$threads" --steps 5
fi
