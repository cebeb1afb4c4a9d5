// Hand-written NEON depthwise row kernels (docs/DESIGN.md, "Kernels":
// direct depthwise 3x3; arm64 NEON written by hand). Four outputs per
// step; the Go caller handles the rest of the row.

#include "textflag.h"

// FMLA_LANE is FMLA Vd.4S, Vn.4S, Vm.S[lane] (d += n * m[lane]), which the
// Go assembler cannot spell (same macro as gemm_arm64.s).
#define FMLA_LANE(d, n, m, lane) WORD $(0x4F801000 | (((lane)&1)<<21) | ((m)<<16) | (((lane)>>1)<<11) | ((n)<<5) | (d))

// LOAD9 loads, for four outputs, the nine shifted input windows into
// V16-V24: row kh's pointers for kw = 0, 1, 2 are R2/R8/R9, R3/R10/R11,
// R4/R12/R13, each advanced by four floats.
#define LOAD9 \
	VLD1.P	16(R2), [V16.S4]; \
	VLD1.P	16(R8), [V17.S4]; \
	VLD1.P	16(R9), [V18.S4]; \
	VLD1.P	16(R3), [V19.S4]; \
	VLD1.P	16(R10), [V20.S4]; \
	VLD1.P	16(R11), [V21.S4]; \
	VLD1.P	16(R4), [V22.S4]; \
	VLD1.P	16(R12), [V23.S4]; \
	VLD1.P	16(R13), [V24.S4]

// WINDOWS sets up the kw = 1, 2 pointers from the row pointers.
#define WINDOWS \
	ADD	$4, R2, R8; \
	ADD	$8, R2, R9; \
	ADD	$4, R3, R10; \
	ADD	$8, R3, R11; \
	ADD	$4, R4, R12; \
	ADD	$8, R4, R13

// func dwRow3x3S1NEON(n int, y, r0, r1, r2 []float32, w *[10]float32, accumulate bool)
// y[i] (=|+=) w[9] + sum over kh, kw of w[kh*3+kw]*r_kh[i+kw], for i < n,
// n a multiple of 4.
TEXT ·dwRow3x3S1NEON(SB), NOSPLIT, $0-113
	MOVD	n+0(FP), R0
	MOVD	y_base+8(FP), R1
	MOVD	r0_base+32(FP), R2
	MOVD	r1_base+56(FP), R3
	MOVD	r2_base+80(FP), R4
	MOVD	w+104(FP), R5
	MOVBU	accumulate+112(FP), R6
	VLD1	(R5), [V0.S4, V1.S4] // taps 0-7
	ADD	$32, R5, R7
	VLD1	(R7), [V2.S2]        // tap 8, bias
	VDUP	V2.S[1], V3.S4       // bias in every lane
	FMOVS	$(1.0), F6
	VDUP	V6.S[0], V6.S4       // ones: the add the assembler lacks is an FMLA by 1
	WINDOWS

loop:
	CMP	$4, R0
	BLT	done
	VORR	V3.B16, V3.B16, V4.B16
	CBZ	R6, sum
	VLD1	(R1), [V5.S4]
	FMLA_LANE(4, 5, 6, 0)

sum:
	LOAD9
	FMLA_LANE(4, 16, 0, 0)
	FMLA_LANE(4, 17, 0, 1)
	FMLA_LANE(4, 18, 0, 2)
	FMLA_LANE(4, 19, 0, 3)
	FMLA_LANE(4, 20, 1, 0)
	FMLA_LANE(4, 21, 1, 1)
	FMLA_LANE(4, 22, 1, 2)
	FMLA_LANE(4, 23, 1, 3)
	FMLA_LANE(4, 24, 2, 0)
	VST1.P	[V4.S4], 16(R1)
	SUB	$4, R0
	B	loop

done:
	RET

// func dwRowGrad3x3S1NEON(n int, dy, r0, r1, r2 []float32, lanes *[36]float32)
// lanes[4*(kh*3+kw)+l] = sum over i < n (a multiple of 4), i%4 == l, of
// dy[i]*r_kh[i+kw]; the Go caller adds the four lanes of each tap (the
// assembler has no horizontal float add).
TEXT ·dwRowGrad3x3S1NEON(SB), NOSPLIT, $0-112
	MOVD	n+0(FP), R0
	MOVD	dy_base+8(FP), R1
	MOVD	r0_base+32(FP), R2
	MOVD	r1_base+56(FP), R3
	MOVD	r2_base+80(FP), R4
	MOVD	lanes+104(FP), R5
	VEOR	V0.B16, V0.B16, V0.B16
	VEOR	V1.B16, V1.B16, V1.B16
	VEOR	V2.B16, V2.B16, V2.B16
	VEOR	V3.B16, V3.B16, V3.B16
	VEOR	V4.B16, V4.B16, V4.B16
	VEOR	V5.B16, V5.B16, V5.B16
	VEOR	V6.B16, V6.B16, V6.B16
	VEOR	V7.B16, V7.B16, V7.B16
	VEOR	V8.B16, V8.B16, V8.B16
	WINDOWS

gloop:
	CMP	$4, R0
	BLT	gdone
	VLD1.P	16(R1), [V9.S4]
	LOAD9
	VFMLA	V9.S4, V16.S4, V0.S4
	VFMLA	V9.S4, V17.S4, V1.S4
	VFMLA	V9.S4, V18.S4, V2.S4
	VFMLA	V9.S4, V19.S4, V3.S4
	VFMLA	V9.S4, V20.S4, V4.S4
	VFMLA	V9.S4, V21.S4, V5.S4
	VFMLA	V9.S4, V22.S4, V6.S4
	VFMLA	V9.S4, V23.S4, V7.S4
	VFMLA	V9.S4, V24.S4, V8.S4
	SUB	$4, R0
	B	gloop

gdone:
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], 64(R5)
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], 64(R5)
	VST1	[V8.S4], (R5)
	RET
