// Hand-written NEON SGEMM micro-kernel (docs/DESIGN.md, "Kernels": arm64
// NEON written by hand; avo does not target arm64).

#include "textflag.h"

// FMLA_LANE is FMLA Vd.4S, Vn.4S, Vm.S[lane] (d += n * m[lane]), which the
// Go assembler cannot spell: the by-element encoding, Q=1, single precision.
#define FMLA_LANE(d, n, m, lane) WORD $(0x4F801000 | (((lane)&1)<<21) | ((m)<<16) | (((lane)>>1)<<11) | ((n)<<5) | (d))

// ROW adds B (V2, V3, V4: twelve columns) times lane `lane` of A register
// `a` to the three accumulators acc, acc+1, acc+2 of one row of the tile.
#define ROW(acc, a, lane) \
	FMLA_LANE(acc, 2, a, lane); \
	FMLA_LANE(acc+1, 3, a, lane); \
	FMLA_LANE(acc+2, 4, a, lane)

// KSTEP is one step over k: eight A values (V0, V1), twelve B values
// (V2-V4), 24 FMLAs into the 8x12 tile held in V8-V31.
#define KSTEP \
	VLD1.P	32(R1), [V0.S4, V1.S4]; \
	VLD1.P	48(R2), [V2.S4, V3.S4, V4.S4]; \
	ROW(8, 0, 0); \
	ROW(11, 0, 1); \
	ROW(14, 0, 2); \
	ROW(17, 0, 3); \
	ROW(20, 1, 0); \
	ROW(23, 1, 1); \
	ROW(26, 1, 2); \
	ROW(29, 1, 3)

// func sgemmMicroNEON(kc int, a, b, c []float32, ldc int)
// C (8x12 tile, row stride ldc floats) += packed A panel (8 x kc) times
// packed B panel (kc x 12). The tile is loaded into the accumulators first,
// so the kernel needs no separate add (and the assembler has no VFADD).
TEXT ·sgemmMicroNEON(SB), NOSPLIT, $0-88
	MOVD	kc+0(FP), R0
	MOVD	a_base+8(FP), R1
	MOVD	b_base+32(FP), R2
	MOVD	c_base+56(FP), R3
	MOVD	ldc+80(FP), R4
	LSL	$2, R4
	MOVD	R3, R5

	VLD1	(R5), [V8.S4, V9.S4, V10.S4]
	ADD	R4, R5
	VLD1	(R5), [V11.S4, V12.S4, V13.S4]
	ADD	R4, R5
	VLD1	(R5), [V14.S4, V15.S4, V16.S4]
	ADD	R4, R5
	VLD1	(R5), [V17.S4, V18.S4, V19.S4]
	ADD	R4, R5
	VLD1	(R5), [V20.S4, V21.S4, V22.S4]
	ADD	R4, R5
	VLD1	(R5), [V23.S4, V24.S4, V25.S4]
	ADD	R4, R5
	VLD1	(R5), [V26.S4, V27.S4, V28.S4]
	ADD	R4, R5
	VLD1	(R5), [V29.S4, V30.S4, V31.S4]
	ADD	R4, R5

	CBZ	R0, store
	TBZ	$0, R0, pairs
	KSTEP
	SUBS	$1, R0
	BEQ	store

pairs:
	KSTEP
	KSTEP
	SUBS	$2, R0
	BNE	pairs

store:
	VST1	[V8.S4, V9.S4, V10.S4], (R3)
	ADD	R4, R3
	VST1	[V11.S4, V12.S4, V13.S4], (R3)
	ADD	R4, R3
	VST1	[V14.S4, V15.S4, V16.S4], (R3)
	ADD	R4, R3
	VST1	[V17.S4, V18.S4, V19.S4], (R3)
	ADD	R4, R3
	VST1	[V20.S4, V21.S4, V22.S4], (R3)
	ADD	R4, R3
	VST1	[V23.S4, V24.S4, V25.S4], (R3)
	ADD	R4, R3
	VST1	[V26.S4, V27.S4, V28.S4], (R3)
	ADD	R4, R3
	VST1	[V29.S4, V30.S4, V31.S4], (R3)
	ADD	R4, R3
	RET
