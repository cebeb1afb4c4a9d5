#!/usr/bin/env bash
# The kernel figures issue #2 asks for, each beside the FMA peak measured
# in the same run (BenchmarkFMAPeak): on a shared machine the peak a core
# gives drifts by the minute, so only the ratios are comparable.
#
#   tools/bench/kernels.sh [rounds]
#
# Prints, per round: the core's clock and the FMA peak it allows, the
# one-core peak measured, SGEMM 512 on one core, resnet18's 3x3
# convolutions FLOP-weighted (total FLOPs / total time) forward and
# backward to the input on one core, and SGEMM 512 on two cores beside two
# ceilings for its scaling: the peak loop on two cores (registers only) and
# two independent one-core SGEMMs, one per core (nothing shared).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-1}
nominal=117 # the nominal fp32 FMA peak of one core of this machine, GFLOP/s
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" ./kernels/

bench() { "$bin" -test.run '^$' -test.bench "$1" -test.benchtime "$2" -test.cpu "$3"; }

for r in $(seq "$rounds"); do
	{
		bench 'CoreClock$' 200x 1
		bench 'FMAPeak/1$' 2000x 1
		bench 'SGEMM/512$' 30x 1
		bench 'SGEMMPerCore$' 30x 1
		bench 'ConvResNet18/(fwd|bwd_data)/3x3' 10x 1
		bench 'FMAPeak/1$' 2000x 1
		bench 'SGEMM/512$' 30x 2
		bench 'SGEMMPerCore$' 30x 2
		bench 'FMAPeak/all$' 2000x 2
	} | awk -v nominal=$nominal -v round="$r" '
		function g(line) { for (i = 1; i <= NF; i++) if ($(i+1) == "GFLOP/s") return $i }
		/^BenchmarkCoreClock[ \t]/ { for (i = 1; i <= NF; i++) if ($(i+1) == "GHz") ghz = $i }
		/^BenchmarkSGEMMPerCore[ \t]/ { i1 = g() }
		/^BenchmarkSGEMMPerCore-2/ { i2 = g() }
		/^BenchmarkFMAPeak\/1[ \t]/ { peak1 += g(); np++ }
		/^BenchmarkFMAPeak\/all-2/ { peak2 = g() }
		/^BenchmarkSGEMM\/512[ \t]/ { s1 = g() }
		/^BenchmarkSGEMM\/512-2/ { s2 = g() }
		/^BenchmarkConvResNet18\/(fwd|bwd_data)\/3x3/ {
			split($1, part, "/"); d = part[2]; ns = $3
			t[d] += ns; f[d] += g() * ns
		}
		END {
			p = peak1 / np
			printf "round %d: core clock %.2f GHz, allowing %.1f GFLOP/s (32 flops a cycle; nominal %d needs %.2f GHz)\n", round, ghz, 32*ghz, nominal, nominal/32
			printf "  one-core FMA peak now %.1f GFLOP/s  %3.0f%% of what the clock allows\n", p, 100*p/(32*ghz)
			printf "  SGEMM 512, 1 core:          %6.1f GFLOP/s  %3.0f%% of measured peak  %3.0f%% of nominal\n", s1, 100*s1/p, 100*s1/nominal
			for (d in t) {
				w = f[d] / t[d]
				printf "  resnet18 3x3 %-8s 1 core: %6.1f GFLOP/s  %3.0f%% of measured peak  %3.0f%% of nominal\n", d, w, 100*w/p, 100*w/nominal
			}
			printf "  SGEMM 512, 2 cores:         %6.1f GFLOP/s  %.2fx one core (FMA loop: %.2fx, one SGEMM per core: %.2fx)\n", s2, s2/s1, peak2/p, i2/i1
		}'
done
