// Command peak generates kernels/peak_amd64.s and its Go stubs: the
// register-only loops the benchmarks read their figures against, the
// core's FMA peak and its clock (docs/DESIGN.md, "Testing and numerics").
// No kernel calls them. Run it through `go generate ./kernels/`; never
// edit its output by hand.
package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

func main() {
	avx.Begin()
	fmaPeakAVX2()
	fmaPeakAVX512()
	clockChain()
	Generate()
}

func fmaPeakAVX2() {
	TEXT("fmaPeakAVX2", NOSPLIT, "func(n int)")
	Doc("fmaPeakAVX2 runs n trips of twelve independent register-only FMAs",
		"(192 flops a trip): the core's measured FMA peak, the yardstick the",
		"GEMM and convolution benchmarks are read against on a shared machine.")
	fmaChains(12, avx.Y, Y12, Y13, VXORPS)
}

// fmaPeakAVX512 is fmaPeakAVX2 on ZMM registers: 24 independent chains,
// enough for two FMA units of latency 4 and more.
func fmaPeakAVX512() {
	TEXT("fmaPeakAVX512", NOSPLIT, "func(n int)")
	Doc("fmaPeakAVX512 runs n trips of 24 independent register-only 16-lane FMAs",
		"(768 flops a trip): the AVX-512 FMA peak of the core.")
	fmaChains(24, avx.Z, Z30, Z31, VPXORD)
}

// fmaChains emits the peak loop: chains accumulators reg(0), reg(1), ...
// zeroed by xor, each taking one FMA of a and b a trip, n trips.
func fmaChains(chains int, reg func(int) VecPhysical, a, b VecPhysical, xor func(ops ...Op)) {
	n := Load(Param("n"), RCX)
	for i := range chains {
		xor(reg(i), reg(i), reg(i))
	}
	Label("peak")
	TESTQ(n, n)
	JE(LabelRef("peakdone"))
	for i := range chains {
		VFMADD231PS(a, b, reg(i))
	}
	DECQ(n)
	JMP(LabelRef("peak"))
	Label("peakdone")
	VZEROUPPER()
	RET()
}

// clockChain emits a loop of dependent one-cycle integer adds: its trips
// per second are the clock the core runs at, whatever else shares it.
func clockChain() {
	TEXT("clockChain", NOSPLIT, "func(n int) int")
	Doc("clockChain runs n trips of eight dependent one-cycle adds (8n cycles)",
		"and returns their sum, 8n: the core's clock, which the FMA peak is",
		"read against (two 8-lane FMA pipes give 32 flops a cycle).")
	n := Load(Param("n"), RCX)
	sum := GP64()
	XORQ(sum, sum)
	Label("clock")
	TESTQ(n, n)
	JE(LabelRef("clockdone"))
	for range 8 {
		ADDQ(U8(1), sum)
	}
	DECQ(n)
	JMP(LabelRef("clock"))
	Label("clockdone")
	Store(sum, ReturnIndex(0))
	RET()
}
