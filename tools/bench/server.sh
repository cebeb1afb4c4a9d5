#!/usr/bin/env bash
# The server side-by-side of issue 17 in one command: dghcore's DGH and
# BRECQ steps (BenchmarkDGHStep, BenchmarkReconstructionStep) beside the
# same steps in PyTorch (tools/torchref/bench_dgh.py, bench_brecq.py) at
# each thread count, one after the other, printed as one table of
# Go time / PyTorch time; then the one-core FMA peaks and SGEMM 512 at one
# thread and at the most threads asked for.
#
#   tools/bench/server.sh [-b DIR] [-r ROUNDS] THREADS...   e.g. tools/bench/server.sh -r 2 2 16
#
# A shared server's speed moves from minute to minute, so each of ROUNDS
# rounds (default 1) times every thread count, Go then PyTorch, and the
# table gives the medians over rounds with the range of the rounds' own
# Go/PyTorch ratios; the load average before each round and the cgroup's
# CPU throttling over the whole run are printed with it.
#
# -b DIR takes the test binaries from DIR (dgh.test, brecq.test and,
# optionally, kernels.test, built with `go test -c`), so the machine needs
# no Go; without it they are built here. PYTHON names the interpreter
# with torch (default python3); DGHCORE_KERNELS, if set, picks dghcore's
# kernel path. The raw benchmark output goes to stderr, the table to
# stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
torchref=$here/../torchref
bin=
rounds=1
while getopts b:r: opt; do
	case $opt in
	b) bin=$(cd "$OPTARG" && pwd) ;;
	r) rounds=$OPTARG ;;
	*) echo "usage: $0 [-b DIR] [-r ROUNDS] THREADS..." >&2; exit 2 ;;
	esac
done
case $rounds in
'' | *[!0-9]* | 0) echo "$0: -r wants a positive number of rounds, not '$rounds'" >&2; exit 2 ;;
esac
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
	echo "usage: $0 [-b DIR] [-r ROUNDS] THREADS...  (e.g. $0 -r 2 2 16)" >&2
	exit 2
fi
py=${PYTHON:-python3}
for f in bench_dgh.py bench_brecq.py; do
	[ -f "$torchref/$f" ] || { echo "$0: $torchref/$f not found" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/log
if [ -z "$bin" ]; then
	bin=$tmp/bin
	(cd "$here/../.." && for p in dgh brecq kernels; do go test -c -o "$bin/$p.test" "./$p/"; done)
fi
for p in dgh brecq; do
	[ -x "$bin/$p.test" ] || { echo "$0: $bin/$p.test not found (go test -c -o $bin/$p.test ./$p/)" >&2; exit 1; }
done

# metric FILE PATTERN: the number before "ms/step" on the first line
# matching PATTERN.
metric() { awk -v pat="$2" '$0 ~ pat { for (i = 2; i <= NF; i++) if ($i == "ms/step") { print $(i-1); exit } }' "$1"; }
gobench() { # BINARY BENCH BENCHTIME THREADS
	(cd "$bin" && "./$1" -test.run '^$' -test.bench "$2" -test.benchtime "$3" -test.cpu "$4" -test.timeout 60m) | tee -a /dev/stderr
}

# throttled: the cgroup's throttled microseconds so far (0 where the
# machine has no cgroup v2 CPU controller).
throttled() { awk '$1 == "throttled_usec" { print $2; f = 1 } END { if (!f) print 0 }' /sys/fs/cgroup/cpu.stat 2>/dev/null || echo 0; }
quota=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "?")
throttled0=$(throttled)

# go_ms[WORK,THREADS] and py_ms[...] collect one time a round, space
# separated; loads[r] is the load average before round r.
declare -A go_ms py_ms
declare -a loads
dghs=(resnet18 mobilenet_v2)
blocks=(resnet18_basicblock resnet50_bottleneck mobilenet_v2_invres)
blockre="^($(IFS='|'; echo "${blocks[*]}"))\$"
for ((r = 1; r <= rounds; r++)); do
	loads[r]=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
	for t in "$@"; do
		echo "== round $r, $t threads (load ${loads[r]})" >&2
		gobench dgh.test '^BenchmarkDGHStep$/^(resnet18|mobilenet_v2)$' 2x "$t" >"$log"
		for m in "${dghs[@]}"; do go_ms[$m,$t]+=" $(metric "$log" "^BenchmarkDGHStep/$m(-$t)?[ \t]")"; done
		gobench brecq.test "^BenchmarkReconstructionStep\$/$blockre" 5x "$t" >"$log"
		for m in "${blocks[@]}"; do go_ms[$m,$t]+=" $(metric "$log" "^BenchmarkReconstructionStep/$m(-$t)?[ \t]")"; done
		(cd "$torchref" && OMP_NUM_THREADS=$t "$py" bench_dgh.py --threads "$t" --steps 2 "${dghs[@]}") | tee -a /dev/stderr >"$log"
		for m in "${dghs[@]}"; do py_ms[$m,$t]+=" $(metric "$log" "^BenchmarkDGHStep/$m ")"; done
		(cd "$torchref" && OMP_NUM_THREADS=$t "$py" bench_brecq.py --threads "$t" --steps 5 "${blocks[@]}") | tee -a /dev/stderr >"$log"
		for m in "${blocks[@]}"; do py_ms[$m,$t]+=" $(metric "$log" "^$m ")"; done
	done
done
throttled1=$(throttled)

kernels=${DGHCORE_KERNELS:-the best}
torch=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "?")
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo "?")
echo
echo "dghcore ($kernels kernel path) vs PyTorch $torch on $(nproc) x $cpu: Go ms / PyTorch ms = ratio"
echo
header="| work |"
rule="|---|"
for t in "$@"; do header+=" $t threads |"; rule+="---|"; done
echo "$header"
echo "$rule"
# med: the awk function giving the median of the space-separated numbers
# in s (0 for none).
med='function med(s,   x, n, i, j, t) {
	n = split(s, x, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j-1] > x[j]; j--) { t = x[j]; x[j] = x[j-1]; x[j-1] = t }
	return n == 0 ? 0 : n % 2 ? x[(n+1)/2] : (x[n/2] + x[n/2+1]) / 2
}'

# stats GO PY: "median Go / median PyTorch = ratio" over the rounds, and
# with several rounds the range of the rounds' own ratios.
stats() {
	awk -v g="$1" -v p="$2" "$med"'
		BEGIN {
			n = split(g, gs, " "); split(p, ps, " ")
			printf "%.0f / %.0f = %.2f", med(g), med(p), med(g) / med(p)
			if (n > 1) {
				lo = hi = gs[1] / ps[1]
				for (i = 2; i <= n; i++) { x = gs[i] / ps[i]; if (x < lo) lo = x; if (x > hi) hi = x }
				printf " (%.2f-%.2f)", lo, hi
			}
		}'
}
row() { # LABEL KEY THREADS...
	local line="| $1 |"
	for t in "${@:3}"; do
		local g=${go_ms[$2,$t]:-} p=${py_ms[$2,$t]:-}
		if [ -n "${g// /}" ] && [ -n "${p// /}" ] && [ "$(wc -w <<<"$g")" -eq "$(wc -w <<<"$p")" ]; then
			line+=" $(stats "$g" "$p") |"
		else
			line+=" ${g:-?} / ${p:-?} |"
		fi
	done
	echo "$line"
}
row "DGH step, resnet18, batch 32 at 224" resnet18 "$@"
row "DGH step, mobilenet_v2" mobilenet_v2 "$@"
row "BRECQ step, resnet18 BasicBlock" resnet18_basicblock "$@"
row "BRECQ step, resnet50 Bottleneck" resnet50_bottleneck "$@"
row "BRECQ step, mobilenet_v2 InvertedResidual" mobilenet_v2_invres "$@"
echo
if [ "$rounds" -gt 1 ]; then echo "medians of $rounds rounds, the rounds' own ratios in brackets"; fi
echo "load average before each round: $(for ((r = 1; r <= rounds; r++)); do printf '%s; ' "${loads[r]}"; done)"
echo "cgroup cpu.max: $quota; throttled during the run: $(( (throttled1 - throttled0) / 1000 )) ms"
if [ $# -gt 1 ]; then
	lo=$1 hi=$1
	for t in "$@"; do
		[ "$t" -lt "$lo" ] && lo=$t
		[ "$t" -gt "$hi" ] && hi=$t
	done
	for m in "${dghs[@]}"; do
		awk -v m="$m" -v a="$lo" -v b="$hi" -v ga="${go_ms[$m,$lo]:-}" -v gb="${go_ms[$m,$hi]:-}" \
			-v pa="${py_ms[$m,$lo]:-}" -v pb="${py_ms[$m,$hi]:-}" "$med"'
			BEGIN {
				if (med(gb) > 0 && med(pb) > 0)
					printf "DGH step %s from %d to %d threads (medians): dghcore %.2fx, PyTorch %.2fx\n", m, a, b, med(ga) / med(gb), med(pa) / med(pb)
			}'
	done
fi

if [ -x "$bin/kernels.test" ]; then
	max=1
	for t in "$@"; do [ "$t" -gt "$max" ] && max=$t; done
	k() { (cd "$bin" && ./kernels.test -test.run '^$' -test.bench "$1" -test.benchtime "$2" -test.cpu "$3") | tee -a /dev/stderr; }
	{
		k '^BenchmarkFMAPeak$/^1$' 2000x 1
		k '^BenchmarkFMAPeak512$/^1$' 2000x 1
		k '^BenchmarkSGEMM$/^512$' 30x 1
		k '^BenchmarkFMAPeak512$/^1$' 2000x 1
		k '^BenchmarkSGEMM$/^512$' 100x "$max"
	} >"$log"
	echo
	awk -v max="$max" '
		function g() { for (i = 2; i <= NF; i++) if ($i == "GFLOP/s") return $(i-1) }
		/^BenchmarkFMAPeak\/1[ \t]/ { p2 = g() }
		/^BenchmarkFMAPeak512\/1[ \t]/ { p5 += g(); n5++ }
		/^BenchmarkSGEMM\/512[ \t]/ { s1 = g() }
		$0 ~ "^BenchmarkSGEMM/512-" max "[ \t]" { sm = g() }
		END {
			if (n5 > 0) p5 /= n5
			printf "FMA peak, one core: AVX2 %.0f GFLOP/s", p2
			if (n5 > 0) printf ", AVX-512 %.0f GFLOP/s", p5
			printf "\nSGEMM 512: one thread %.0f GFLOP/s", s1
			if (n5 > 0) printf " (%.0f%% of the AVX-512 peak beside it)", 100 * s1 / p5
			else if (p2 > 0) printf " (%.0f%% of the AVX2 peak beside it)", 100 * s1 / p2
			if (max > 1) printf "; %d threads %.0f GFLOP/s (%.1fx)", max, sm, sm / s1
			printf "\n"
		}' "$log"
fi
