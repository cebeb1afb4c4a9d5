// NEON twins of the hot elementwise kernels (docs/DESIGN.md, "Kernels"). Written by
// hand; vector instructions the Go assembler lacks (FADD, FMAX, ... on
// .4S) are WORD encodings, each with its instruction in the comment.
// Loops take 16 floats (four vectors) per iteration, then 4, then one
// float at a time.

#include "textflag.h"

// func axpyNEON(alpha float32, x, y []float32)
TEXT ·axpyNEON(SB), NOSPLIT, $0-56
	FMOVS alpha+0(FP), F0
	VDUP V0.S[0], V0.S4
	MOVD x_base+8(FP), R0
	MOVD y_base+32(FP), R1
	MOVD y_len+40(FP), R2
	MOVD R1, R3

axpy16:
	CMP $16, R2
	BLT axpy4
	VLD1.P 64(R0), [V1.S4, V2.S4, V3.S4, V4.S4]
	VLD1.P 64(R1), [V5.S4, V6.S4, V7.S4, V8.S4]
	VFMLA V0.S4, V1.S4, V5.S4
	VFMLA V0.S4, V2.S4, V6.S4
	VFMLA V0.S4, V3.S4, V7.S4
	VFMLA V0.S4, V4.S4, V8.S4
	VST1.P [V5.S4, V6.S4, V7.S4, V8.S4], 64(R3)
	SUB $16, R2
	B axpy16

axpy4:
	CMP $4, R2
	BLT axpy1
	VLD1.P 16(R0), [V1.S4]
	VLD1.P 16(R1), [V5.S4]
	VFMLA V0.S4, V1.S4, V5.S4
	VST1.P [V5.S4], 16(R3)
	SUB $4, R2
	B axpy4

axpy1:
	CBZ R2, axpydone
	FMOVS.P 4(R0), F1
	FMOVS (R1), F5
	FMADDS  F0, F5, F1, F5
	FMOVS.P F5, 4(R1)
	SUB $1, R2
	B axpy1

axpydone:
	RET

// func dotNEON(x, y []float32) float32
TEXT ·dotNEON(SB), NOSPLIT, $0-52
	MOVD x_base+0(FP), R0
	MOVD x_len+8(FP), R2
	MOVD y_base+24(FP), R1
	VEOR V16.B16, V16.B16, V16.B16
	VEOR V17.B16, V17.B16, V17.B16
	VEOR V18.B16, V18.B16, V18.B16
	VEOR V19.B16, V19.B16, V19.B16

dot16:
	CMP $16, R2
	BLT dot4
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R1), [V4.S4, V5.S4, V6.S4, V7.S4]
	VFMLA V4.S4, V0.S4, V16.S4
	VFMLA V5.S4, V1.S4, V17.S4
	VFMLA V6.S4, V2.S4, V18.S4
	VFMLA V7.S4, V3.S4, V19.S4
	SUB $16, R2
	B dot16

dot4:
	CMP $4, R2
	BLT dotreduce
	VLD1.P 16(R0), [V0.S4]
	VLD1.P 16(R1), [V4.S4]
	VFMLA V4.S4, V0.S4, V16.S4
	SUB $4, R2
	B dot4

dotreduce:
	WORD $0x4e31d610 // fadd v16.4s, v16.4s, v17.4s
	WORD $0x4e33d652 // fadd v18.4s, v18.4s, v19.4s
	WORD $0x4e32d610 // fadd v16.4s, v16.4s, v18.4s
	WORD $0x6e30d610 // faddp v16.4s, v16.4s, v16.4s
	WORD $0x7e30da10 // faddp s16, v16.2s

dot1:
	CBZ R2, dotdone
	FMOVS.P 4(R0), F0
	FMOVS.P 4(R1), F4
	FMADDS  F4, F16, F0, F16
	SUB $1, R2
	B dot1

dotdone:
	FMOVS F16, ret+48(FP)
	RET

// func scaleShiftNEON(y, x []float32, scale, shift, lo, hi float32)
TEXT ·scaleShiftNEON(SB), NOSPLIT, $0-64
	MOVD y_base+0(FP), R0
	MOVD y_len+8(FP), R2
	MOVD x_base+24(FP), R1
	FMOVS scale+48(FP), F0
	FMOVS shift+52(FP), F1
	FMOVS lo+56(FP), F2
	FMOVS hi+60(FP), F3
	VDUP V0.S[0], V0.S4
	VDUP V1.S[0], V1.S4
	VDUP V2.S[0], V2.S4
	VDUP V3.S[0], V3.S4

ss16:
	CMP $16, R2
	BLT ss4
	VLD1.P 64(R1), [V4.S4, V5.S4, V6.S4, V7.S4]
	VORR V1.B16, V1.B16, V8.B16
	VORR V1.B16, V1.B16, V9.B16
	VORR V1.B16, V1.B16, V10.B16
	VORR V1.B16, V1.B16, V11.B16
	VFMLA V0.S4, V4.S4, V8.S4
	VFMLA V0.S4, V5.S4, V9.S4
	VFMLA V0.S4, V6.S4, V10.S4
	VFMLA V0.S4, V7.S4, V11.S4
	WORD $0x4e22f508 // fmax v8.4s, v8.4s, v2.4s
	WORD $0x4e22f529 // fmax v9.4s, v9.4s, v2.4s
	WORD $0x4e22f54a // fmax v10.4s, v10.4s, v2.4s
	WORD $0x4e22f56b // fmax v11.4s, v11.4s, v2.4s
	WORD $0x4ea3f508 // fmin v8.4s, v8.4s, v3.4s
	WORD $0x4ea3f529 // fmin v9.4s, v9.4s, v3.4s
	WORD $0x4ea3f54a // fmin v10.4s, v10.4s, v3.4s
	WORD $0x4ea3f56b // fmin v11.4s, v11.4s, v3.4s
	VST1.P [V8.S4, V9.S4, V10.S4, V11.S4], 64(R0)
	SUB $16, R2
	B ss16

ss4:
	CMP $4, R2
	BLT ss1
	VLD1.P 16(R1), [V4.S4]
	VORR V1.B16, V1.B16, V8.B16
	VFMLA V0.S4, V4.S4, V8.S4
	WORD $0x4e22f508 // fmax v8.4s, v8.4s, v2.4s
	WORD $0x4ea3f508 // fmin v8.4s, v8.4s, v3.4s
	VST1.P [V8.S4], 16(R0)
	SUB $4, R2
	B ss4

ss1:
	CBZ R2, ssdone
	FMOVS.P 4(R1), F4
	FMADDS  F0, F1, F4, F8
	FMAXS   F2, F8, F8
	FMINS   F3, F8, F8
	FMOVS.P F8, 4(R0)
	SUB $1, R2
	B ss1

ssdone:
	RET

// func addNEON(dst, a, b []float32)
// addNEON sets dst[i] = a[i] + b[i] over len(dst) floats.
TEXT ·addNEON(SB), NOSPLIT, $0-72
	MOVD dst_base+0(FP), R0
	MOVD dst_len+8(FP), R3
	MOVD a_base+24(FP), R1
	MOVD b_base+48(FP), R2

addNEON16:
	CMP $16, R3
	BLT addNEON4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	WORD $0x4e24d400 // fadd v0.4s, v0.4s, v4.4s
	WORD $0x4e25d421 // fadd v1.4s, v1.4s, v5.4s
	WORD $0x4e26d442 // fadd v2.4s, v2.4s, v6.4s
	WORD $0x4e27d463 // fadd v3.4s, v3.4s, v7.4s
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB $16, R3
	B addNEON16

addNEON4:
	CMP $4, R3
	BLT addNEON1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V4.S4]
	WORD $0x4e24d400 // fadd v0.4s, v0.4s, v4.4s
	VST1.P [V0.S4], 16(R0)
	SUB $4, R3
	B addNEON4

addNEON1:
	CBZ R3, addNEONdone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V4.S[0]
	WORD $0x4e24d400 // fadd v0.4s, v0.4s, v4.4s
	VST1.P V0.S[0], 4(R0)
	SUB $1, R3
	B addNEON1

addNEONdone:
	RET

// func subNEON(dst, a, b []float32)
// subNEON sets dst[i] = a[i] - b[i] over len(dst) floats.
TEXT ·subNEON(SB), NOSPLIT, $0-72
	MOVD dst_base+0(FP), R0
	MOVD dst_len+8(FP), R3
	MOVD a_base+24(FP), R1
	MOVD b_base+48(FP), R2

subNEON16:
	CMP $16, R3
	BLT subNEON4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	WORD $0x4ea4d400 // fsub v0.4s, v0.4s, v4.4s
	WORD $0x4ea5d421 // fsub v1.4s, v1.4s, v5.4s
	WORD $0x4ea6d442 // fsub v2.4s, v2.4s, v6.4s
	WORD $0x4ea7d463 // fsub v3.4s, v3.4s, v7.4s
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB $16, R3
	B subNEON16

subNEON4:
	CMP $4, R3
	BLT subNEON1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V4.S4]
	WORD $0x4ea4d400 // fsub v0.4s, v0.4s, v4.4s
	VST1.P [V0.S4], 16(R0)
	SUB $4, R3
	B subNEON4

subNEON1:
	CBZ R3, subNEONdone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V4.S[0]
	WORD $0x4ea4d400 // fsub v0.4s, v0.4s, v4.4s
	VST1.P V0.S[0], 4(R0)
	SUB $1, R3
	B subNEON1

subNEONdone:
	RET

// func mulNEON(dst, a, b []float32)
// mulNEON sets dst[i] = a[i] * b[i] over len(dst) floats.
TEXT ·mulNEON(SB), NOSPLIT, $0-72
	MOVD dst_base+0(FP), R0
	MOVD dst_len+8(FP), R3
	MOVD a_base+24(FP), R1
	MOVD b_base+48(FP), R2

mulNEON16:
	CMP $16, R3
	BLT mulNEON4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	WORD $0x6e24dc00 // fmul v0.4s, v0.4s, v4.4s
	WORD $0x6e25dc21 // fmul v1.4s, v1.4s, v5.4s
	WORD $0x6e26dc42 // fmul v2.4s, v2.4s, v6.4s
	WORD $0x6e27dc63 // fmul v3.4s, v3.4s, v7.4s
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB $16, R3
	B mulNEON16

mulNEON4:
	CMP $4, R3
	BLT mulNEON1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V4.S4]
	WORD $0x6e24dc00 // fmul v0.4s, v0.4s, v4.4s
	VST1.P [V0.S4], 16(R0)
	SUB $4, R3
	B mulNEON4

mulNEON1:
	CBZ R3, mulNEONdone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V4.S[0]
	WORD $0x6e24dc00 // fmul v0.4s, v0.4s, v4.4s
	VST1.P V0.S[0], 4(R0)
	SUB $1, R3
	B mulNEON1

mulNEONdone:
	RET

// func scaleNEON(dst []float32, alpha float32, x []float32)
// scaleNEON sets dst[i] = alpha*x[i] over len(dst) floats.
TEXT ·scaleNEON(SB), NOSPLIT, $0-56
	MOVD dst_base+0(FP), R0
	MOVD dst_len+8(FP), R3
	FMOVS alpha+24(FP), F31
	VDUP V31.S[0], V31.S4
	MOVD x_base+32(FP), R1

scale16:
	CMP $16, R3
	BLT scale4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD $0x6e3fdc00 // fmul v0.4s, v0.4s, v31.4s
	WORD $0x6e3fdc21 // fmul v1.4s, v1.4s, v31.4s
	WORD $0x6e3fdc42 // fmul v2.4s, v2.4s, v31.4s
	WORD $0x6e3fdc63 // fmul v3.4s, v3.4s, v31.4s
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB $16, R3
	B scale16

scale4:
	CMP $4, R3
	BLT scale1
	VLD1.P 16(R1), [V0.S4]
	WORD $0x6e3fdc00 // fmul v0.4s, v0.4s, v31.4s
	VST1.P [V0.S4], 16(R0)
	SUB $4, R3
	B scale4

scale1:
	CBZ R3, scaledone
	VLD1.P 4(R1), V0.S[0]
	WORD $0x6e3fdc00 // fmul v0.4s, v0.4s, v31.4s
	VST1.P V0.S[0], 4(R0)
	SUB $1, R3
	B scale1

scaledone:
	RET

// func reluNEON(dst, x []float32)
// reluNEON sets dst[i] = max(x[i], 0) over len(dst) floats; NaN propagates.
TEXT ·reluNEON(SB), NOSPLIT, $0-48
	MOVD dst_base+0(FP), R0
	MOVD dst_len+8(FP), R3
	MOVD x_base+24(FP), R1
	VEOR V31.B16, V31.B16, V31.B16

relu16:
	CMP $16, R3
	BLT relu4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD $0x4e3ff400 // fmax v0.4s, v0.4s, v31.4s
	WORD $0x4e3ff421 // fmax v1.4s, v1.4s, v31.4s
	WORD $0x4e3ff442 // fmax v2.4s, v2.4s, v31.4s
	WORD $0x4e3ff463 // fmax v3.4s, v3.4s, v31.4s
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB $16, R3
	B relu16

relu4:
	CMP $4, R3
	BLT relu1
	VLD1.P 16(R1), [V0.S4]
	WORD $0x4e3ff400 // fmax v0.4s, v0.4s, v31.4s
	VST1.P [V0.S4], 16(R0)
	SUB $4, R3
	B relu4

relu1:
	CBZ R3, reludone
	VLD1.P 4(R1), V0.S[0]
	WORD $0x4e3ff400 // fmax v0.4s, v0.4s, v31.4s
	VST1.P V0.S[0], 4(R0)
	SUB $1, R3
	B relu1

reludone:
	RET

// func relu6NEON(dst, x []float32)
// relu6NEON sets dst[i] = min(max(x[i], 0), 6) over len(dst) floats; NaN propagates.
TEXT ·relu6NEON(SB), NOSPLIT, $0-48
	MOVD dst_base+0(FP), R0
	MOVD dst_len+8(FP), R3
	MOVD x_base+24(FP), R1
	VEOR V31.B16, V31.B16, V31.B16
	FMOVS $6.0, F30
	VDUP V30.S[0], V30.S4

relu616:
	CMP $16, R3
	BLT relu64
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD $0x4e3ff400 // fmax v0.4s, v0.4s, v31.4s
	WORD $0x4ebef400 // fmin v0.4s, v0.4s, v30.4s
	WORD $0x4e3ff421 // fmax v1.4s, v1.4s, v31.4s
	WORD $0x4ebef421 // fmin v1.4s, v1.4s, v30.4s
	WORD $0x4e3ff442 // fmax v2.4s, v2.4s, v31.4s
	WORD $0x4ebef442 // fmin v2.4s, v2.4s, v30.4s
	WORD $0x4e3ff463 // fmax v3.4s, v3.4s, v31.4s
	WORD $0x4ebef463 // fmin v3.4s, v3.4s, v30.4s
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB $16, R3
	B relu616

relu64:
	CMP $4, R3
	BLT relu61
	VLD1.P 16(R1), [V0.S4]
	WORD $0x4e3ff400 // fmax v0.4s, v0.4s, v31.4s
	WORD $0x4ebef400 // fmin v0.4s, v0.4s, v30.4s
	VST1.P [V0.S4], 16(R0)
	SUB $4, R3
	B relu64

relu61:
	CBZ R3, relu6done
	VLD1.P 4(R1), V0.S[0]
	WORD $0x4e3ff400 // fmax v0.4s, v0.4s, v31.4s
	WORD $0x4ebef400 // fmin v0.4s, v0.4s, v30.4s
	VST1.P V0.S[0], 4(R0)
	SUB $1, R3
	B relu61

relu6done:
	RET

// func reluBackwardNEON(x, dy, dx []float32)
// reluBackwardNEON accumulates dx[i] += dy[i] where x[i] > 0.
TEXT ·reluBackwardNEON(SB), NOSPLIT, $0-72
	MOVD x_base+0(FP), R1
	MOVD dy_base+24(FP), R2
	MOVD dx_base+48(FP), R0
	MOVD dx_len+56(FP), R3
	MOVD R0, R4

reluBackward16:
	CMP $16, R3
	BLT reluBackward4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P 64(R4), [V8.S4, V9.S4, V10.S4, V11.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	VAND V12.B16, V4.B16, V4.B16
	WORD $0x4e24d500 // fadd v0.4s, v8.4s, v4.4s
	WORD $0x4ea0c82d // fcmgt v13.4s, v1.4s, #0.0
	VAND V13.B16, V5.B16, V5.B16
	WORD $0x4e25d521 // fadd v1.4s, v9.4s, v5.4s
	WORD $0x4ea0c84e // fcmgt v14.4s, v2.4s, #0.0
	VAND V14.B16, V6.B16, V6.B16
	WORD $0x4e26d542 // fadd v2.4s, v10.4s, v6.4s
	WORD $0x4ea0c86f // fcmgt v15.4s, v3.4s, #0.0
	VAND V15.B16, V7.B16, V7.B16
	WORD $0x4e27d563 // fadd v3.4s, v11.4s, v7.4s
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB $16, R3
	B reluBackward16

reluBackward4:
	CMP $4, R3
	BLT reluBackward1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V4.S4]
	VLD1.P 16(R4), [V8.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	VAND V12.B16, V4.B16, V4.B16
	WORD $0x4e24d500 // fadd v0.4s, v8.4s, v4.4s
	VST1.P [V0.S4], 16(R0)
	SUB $4, R3
	B reluBackward4

reluBackward1:
	CBZ R3, reluBackwarddone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V4.S[0]
	VLD1.P 4(R4), V8.S[0]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	VAND V12.B16, V4.B16, V4.B16
	WORD $0x4e24d500 // fadd v0.4s, v8.4s, v4.4s
	VST1.P V0.S[0], 4(R0)
	SUB $1, R3
	B reluBackward1

reluBackwarddone:
	RET

// func relu6BackwardNEON(x, dy, dx []float32)
// relu6BackwardNEON accumulates dx[i] += dy[i] where 0 < x[i] < 6.
TEXT ·relu6BackwardNEON(SB), NOSPLIT, $0-72
	MOVD x_base+0(FP), R1
	MOVD dy_base+24(FP), R2
	MOVD dx_base+48(FP), R0
	MOVD dx_len+56(FP), R3
	MOVD R0, R4
	FMOVS $6.0, F30
	VDUP V30.S[0], V30.S4

relu6Backward16:
	CMP $16, R3
	BLT relu6Backward4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P 64(R4), [V8.S4, V9.S4, V10.S4, V11.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	WORD $0x6ea0e7d0 // fcmgt v16.4s, v30.4s, v0.4s
	VAND V16.B16, V12.B16, V12.B16
	VAND V12.B16, V4.B16, V4.B16
	WORD $0x4e24d500 // fadd v0.4s, v8.4s, v4.4s
	WORD $0x4ea0c82d // fcmgt v13.4s, v1.4s, #0.0
	WORD $0x6ea1e7d1 // fcmgt v17.4s, v30.4s, v1.4s
	VAND V17.B16, V13.B16, V13.B16
	VAND V13.B16, V5.B16, V5.B16
	WORD $0x4e25d521 // fadd v1.4s, v9.4s, v5.4s
	WORD $0x4ea0c84e // fcmgt v14.4s, v2.4s, #0.0
	WORD $0x6ea2e7d2 // fcmgt v18.4s, v30.4s, v2.4s
	VAND V18.B16, V14.B16, V14.B16
	VAND V14.B16, V6.B16, V6.B16
	WORD $0x4e26d542 // fadd v2.4s, v10.4s, v6.4s
	WORD $0x4ea0c86f // fcmgt v15.4s, v3.4s, #0.0
	WORD $0x6ea3e7d3 // fcmgt v19.4s, v30.4s, v3.4s
	VAND V19.B16, V15.B16, V15.B16
	VAND V15.B16, V7.B16, V7.B16
	WORD $0x4e27d563 // fadd v3.4s, v11.4s, v7.4s
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB $16, R3
	B relu6Backward16

relu6Backward4:
	CMP $4, R3
	BLT relu6Backward1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V4.S4]
	VLD1.P 16(R4), [V8.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	WORD $0x6ea0e7d0 // fcmgt v16.4s, v30.4s, v0.4s
	VAND V16.B16, V12.B16, V12.B16
	VAND V12.B16, V4.B16, V4.B16
	WORD $0x4e24d500 // fadd v0.4s, v8.4s, v4.4s
	VST1.P [V0.S4], 16(R0)
	SUB $4, R3
	B relu6Backward4

relu6Backward1:
	CBZ R3, relu6Backwarddone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V4.S[0]
	VLD1.P 4(R4), V8.S[0]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	WORD $0x6ea0e7d0 // fcmgt v16.4s, v30.4s, v0.4s
	VAND V16.B16, V12.B16, V12.B16
	VAND V12.B16, V4.B16, V4.B16
	WORD $0x4e24d500 // fadd v0.4s, v8.4s, v4.4s
	VST1.P V0.S[0], 4(R0)
	SUB $1, R3
	B relu6Backward1

relu6Backwarddone:
	RET

// func reluBackwardSetNEON(x, dy, dx []float32)
// reluBackwardSetNEON sets dx[i] = dy[i] where x[i] > 0, else 0; dx is
// not read. The mask clears dy's blocked lanes, and dy is stored.
TEXT ·reluBackwardSetNEON(SB), NOSPLIT, $0-72
	MOVD x_base+0(FP), R1
	MOVD dy_base+24(FP), R2
	MOVD dx_base+48(FP), R0
	MOVD dx_len+56(FP), R3

reluBackwardSet16:
	CMP $16, R3
	BLT reluBackwardSet4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	VAND V12.B16, V4.B16, V4.B16
	WORD $0x4ea0c82d // fcmgt v13.4s, v1.4s, #0.0
	VAND V13.B16, V5.B16, V5.B16
	WORD $0x4ea0c84e // fcmgt v14.4s, v2.4s, #0.0
	VAND V14.B16, V6.B16, V6.B16
	WORD $0x4ea0c86f // fcmgt v15.4s, v3.4s, #0.0
	VAND V15.B16, V7.B16, V7.B16
	VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R0)
	SUB $16, R3
	B reluBackwardSet16

reluBackwardSet4:
	CMP $4, R3
	BLT reluBackwardSet1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V4.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	VAND V12.B16, V4.B16, V4.B16
	VST1.P [V4.S4], 16(R0)
	SUB $4, R3
	B reluBackwardSet4

reluBackwardSet1:
	CBZ R3, reluBackwardSetdone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V4.S[0]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	VAND V12.B16, V4.B16, V4.B16
	VST1.P V4.S[0], 4(R0)
	SUB $1, R3
	B reluBackwardSet1

reluBackwardSetdone:
	RET

// func relu6BackwardSetNEON(x, dy, dx []float32)
// relu6BackwardSetNEON sets dx[i] = dy[i] where 0 < x[i] < 6, else 0; dx
// is not read.
TEXT ·relu6BackwardSetNEON(SB), NOSPLIT, $0-72
	MOVD x_base+0(FP), R1
	MOVD dy_base+24(FP), R2
	MOVD dx_base+48(FP), R0
	MOVD dx_len+56(FP), R3
	FMOVS $6.0, F30
	VDUP V30.S[0], V30.S4

relu6BackwardSet16:
	CMP $16, R3
	BLT relu6BackwardSet4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	WORD $0x6ea0e7d0 // fcmgt v16.4s, v30.4s, v0.4s
	VAND V16.B16, V12.B16, V12.B16
	VAND V12.B16, V4.B16, V4.B16
	WORD $0x4ea0c82d // fcmgt v13.4s, v1.4s, #0.0
	WORD $0x6ea1e7d1 // fcmgt v17.4s, v30.4s, v1.4s
	VAND V17.B16, V13.B16, V13.B16
	VAND V13.B16, V5.B16, V5.B16
	WORD $0x4ea0c84e // fcmgt v14.4s, v2.4s, #0.0
	WORD $0x6ea2e7d2 // fcmgt v18.4s, v30.4s, v2.4s
	VAND V18.B16, V14.B16, V14.B16
	VAND V14.B16, V6.B16, V6.B16
	WORD $0x4ea0c86f // fcmgt v15.4s, v3.4s, #0.0
	WORD $0x6ea3e7d3 // fcmgt v19.4s, v30.4s, v3.4s
	VAND V19.B16, V15.B16, V15.B16
	VAND V15.B16, V7.B16, V7.B16
	VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R0)
	SUB $16, R3
	B relu6BackwardSet16

relu6BackwardSet4:
	CMP $4, R3
	BLT relu6BackwardSet1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V4.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	WORD $0x6ea0e7d0 // fcmgt v16.4s, v30.4s, v0.4s
	VAND V16.B16, V12.B16, V12.B16
	VAND V12.B16, V4.B16, V4.B16
	VST1.P [V4.S4], 16(R0)
	SUB $4, R3
	B relu6BackwardSet4

relu6BackwardSet1:
	CBZ R3, relu6BackwardSetdone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V4.S[0]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	WORD $0x6ea0e7d0 // fcmgt v16.4s, v30.4s, v0.4s
	VAND V16.B16, V12.B16, V12.B16
	VAND V12.B16, V4.B16, V4.B16
	VST1.P V4.S[0], 4(R0)
	SUB $1, R3
	B relu6BackwardSet1

relu6BackwardSetdone:
	RET

// func momentsNEON(x []float32) (s, ss float64)
// momentsNEON returns the sum and the sum of squares of x, accumulated in
// float64 (FCVTL widens each half vector to two doubles).
TEXT ·momentsNEON(SB), NOSPLIT, $0-40
	MOVD x_base+0(FP), R1
	MOVD x_len+8(FP), R3
	VEOR V16.B16, V16.B16, V16.B16
	VEOR V17.B16, V17.B16, V17.B16
	VEOR V18.B16, V18.B16, V18.B16
	VEOR V19.B16, V19.B16, V19.B16

moments16:
	CMP $16, R3
	BLT moments4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD $0x0e617808 // fcvtl v8.2d, v0.2s
	WORD $0x4e61780c // fcvtl2 v12.2d, v0.4s
	WORD $0x4e68d610 // fadd v16.2d, v16.2d, v8.2d
	WORD $0x4e6cd631 // fadd v17.2d, v17.2d, v12.2d
	VFMLA V8.D2, V8.D2, V18.D2
	VFMLA V12.D2, V12.D2, V19.D2
	WORD $0x0e617829 // fcvtl v9.2d, v1.2s
	WORD $0x4e61782d // fcvtl2 v13.2d, v1.4s
	WORD $0x4e69d610 // fadd v16.2d, v16.2d, v9.2d
	WORD $0x4e6dd631 // fadd v17.2d, v17.2d, v13.2d
	VFMLA V9.D2, V9.D2, V18.D2
	VFMLA V13.D2, V13.D2, V19.D2
	WORD $0x0e61784a // fcvtl v10.2d, v2.2s
	WORD $0x4e61784e // fcvtl2 v14.2d, v2.4s
	WORD $0x4e6ad610 // fadd v16.2d, v16.2d, v10.2d
	WORD $0x4e6ed631 // fadd v17.2d, v17.2d, v14.2d
	VFMLA V10.D2, V10.D2, V18.D2
	VFMLA V14.D2, V14.D2, V19.D2
	WORD $0x0e61786b // fcvtl v11.2d, v3.2s
	WORD $0x4e61786f // fcvtl2 v15.2d, v3.4s
	WORD $0x4e6bd610 // fadd v16.2d, v16.2d, v11.2d
	WORD $0x4e6fd631 // fadd v17.2d, v17.2d, v15.2d
	VFMLA V11.D2, V11.D2, V18.D2
	VFMLA V15.D2, V15.D2, V19.D2
	SUB $16, R3
	B moments16

moments4:
	CMP $4, R3
	BLT moments1
	VLD1.P 16(R1), [V0.S4]
	WORD $0x0e617808 // fcvtl v8.2d, v0.2s
	WORD $0x4e61780c // fcvtl2 v12.2d, v0.4s
	WORD $0x4e68d610 // fadd v16.2d, v16.2d, v8.2d
	WORD $0x4e6cd631 // fadd v17.2d, v17.2d, v12.2d
	VFMLA V8.D2, V8.D2, V18.D2
	VFMLA V12.D2, V12.D2, V19.D2
	SUB $4, R3
	B moments4

moments1:
	CBZ R3, momentsdone
	VEOR V0.B16, V0.B16, V0.B16
	VLD1.P 4(R1), V0.S[0]
	WORD $0x0e617808 // fcvtl v8.2d, v0.2s
	WORD $0x4e61780c // fcvtl2 v12.2d, v0.4s
	WORD $0x4e68d610 // fadd v16.2d, v16.2d, v8.2d
	WORD $0x4e6cd631 // fadd v17.2d, v17.2d, v12.2d
	VFMLA V8.D2, V8.D2, V18.D2
	VFMLA V12.D2, V12.D2, V19.D2
	SUB $1, R3
	B moments1

momentsdone:
	WORD $0x4e71d610 // fadd v16.2d, v16.2d, v17.2d
	WORD $0x4e73d652 // fadd v18.2d, v18.2d, v19.2d
	WORD $0x7e70da10 // faddp d16, v16.2d
	WORD $0x7e70da52 // faddp d18, v18.2d
	FMOVD F16, s+24(FP)
	FMOVD F18, ss+32(FP)
	RET

// func momentsBackwardNEON(x, dx []float32, a, b float32)
// momentsBackwardNEON accumulates dx[i] += a + b*x[i] over len(dx) floats.
TEXT ·momentsBackwardNEON(SB), NOSPLIT, $0-56
	MOVD x_base+0(FP), R1
	MOVD dx_base+24(FP), R0
	MOVD dx_len+32(FP), R3
	FMOVS a+48(FP), F30
	FMOVS b+52(FP), F31
	VDUP V30.S[0], V30.S4
	VDUP V31.S[0], V31.S4
	MOVD R0, R4

mb16:
	CMP $16, R3
	BLT mb4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R4), [V4.S4, V5.S4, V6.S4, V7.S4]
	VORR V30.B16, V30.B16, V8.B16
	VORR V30.B16, V30.B16, V9.B16
	VORR V30.B16, V30.B16, V10.B16
	VORR V30.B16, V30.B16, V11.B16
	VFMLA V31.S4, V0.S4, V8.S4
	VFMLA V31.S4, V1.S4, V9.S4
	VFMLA V31.S4, V2.S4, V10.S4
	VFMLA V31.S4, V3.S4, V11.S4
	WORD $0x4e28d484 // fadd v4.4s, v4.4s, v8.4s
	WORD $0x4e29d4a5 // fadd v5.4s, v5.4s, v9.4s
	WORD $0x4e2ad4c6 // fadd v6.4s, v6.4s, v10.4s
	WORD $0x4e2bd4e7 // fadd v7.4s, v7.4s, v11.4s
	VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R0)
	SUB $16, R3
	B mb16

mb4:
	CMP $4, R3
	BLT mb1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R4), [V4.S4]
	VORR V30.B16, V30.B16, V8.B16
	VFMLA V31.S4, V0.S4, V8.S4
	WORD $0x4e28d484 // fadd v4.4s, v4.4s, v8.4s
	VST1.P [V4.S4], 16(R0)
	SUB $4, R3
	B mb4

mb1:
	CBZ R3, mbdone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R4), V4.S[0]
	VORR V30.B16, V30.B16, V8.B16
	VFMLA V31.S4, V0.S4, V8.S4
	WORD $0x4e28d484 // fadd v4.4s, v4.4s, v8.4s
	VST1.P V4.S[0], 4(R0)
	SUB $1, R3
	B mb1

mbdone:
	RET

// func scaleShiftBackwardReLUNEON(y, dy, dx []float32, scale float32)
// scaleShiftBackwardReLUNEON accumulates dx[i] += dy[i]*scale where y[i] > 0.
TEXT ·scaleShiftBackwardReLUNEON(SB), NOSPLIT, $0-76
	MOVD y_base+0(FP), R1
	MOVD dy_base+24(FP), R2
	MOVD dx_base+48(FP), R0
	MOVD dx_len+56(FP), R3
	FMOVS scale+72(FP), F31
	VDUP V31.S[0], V31.S4
	MOVD R0, R4
ssb16:
	CMP $16, R3
	BLT ssb4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P 64(R4), [V8.S4, V9.S4, V10.S4, V11.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	VAND V12.B16, V4.B16, V4.B16
	VFMLA V31.S4, V4.S4, V8.S4
	WORD $0x4ea0c82d // fcmgt v13.4s, v1.4s, #0.0
	VAND V13.B16, V5.B16, V5.B16
	VFMLA V31.S4, V5.S4, V9.S4
	WORD $0x4ea0c84e // fcmgt v14.4s, v2.4s, #0.0
	VAND V14.B16, V6.B16, V6.B16
	VFMLA V31.S4, V6.S4, V10.S4
	WORD $0x4ea0c86f // fcmgt v15.4s, v3.4s, #0.0
	VAND V15.B16, V7.B16, V7.B16
	VFMLA V31.S4, V7.S4, V11.S4
	VST1.P [V8.S4, V9.S4, V10.S4, V11.S4], 64(R0)
	SUB $16, R3
	B ssb16

ssb4:
	CMP $4, R3
	BLT ssb1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V4.S4]
	VLD1.P 16(R4), [V8.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	VAND V12.B16, V4.B16, V4.B16
	VFMLA V31.S4, V4.S4, V8.S4
	VST1.P [V8.S4], 16(R0)
	SUB $4, R3
	B ssb4

ssb1:
	CBZ R3, ssbdone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V4.S[0]
	VLD1.P 4(R4), V8.S[0]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	VAND V12.B16, V4.B16, V4.B16
	VFMLA V31.S4, V4.S4, V8.S4
	VST1.P V8.S[0], 4(R0)
	SUB $1, R3
	B ssb1

ssbdone:
	RET

// func scaleShiftBackwardReLU6NEON(y, dy, dx []float32, scale float32)
// scaleShiftBackwardReLU6NEON accumulates dx[i] += dy[i]*scale where 0 < y[i] < 6.
TEXT ·scaleShiftBackwardReLU6NEON(SB), NOSPLIT, $0-76
	MOVD y_base+0(FP), R1
	MOVD dy_base+24(FP), R2
	MOVD dx_base+48(FP), R0
	MOVD dx_len+56(FP), R3
	FMOVS scale+72(FP), F31
	VDUP V31.S[0], V31.S4
	MOVD R0, R4
	FMOVS $6.0, F30
	VDUP V30.S[0], V30.S4
ssb616:
	CMP $16, R3
	BLT ssb64
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P 64(R4), [V8.S4, V9.S4, V10.S4, V11.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	WORD $0x6ea0e7d0 // fcmgt v16.4s, v30.4s, v0.4s
	VAND V16.B16, V12.B16, V12.B16
	VAND V12.B16, V4.B16, V4.B16
	VFMLA V31.S4, V4.S4, V8.S4
	WORD $0x4ea0c82d // fcmgt v13.4s, v1.4s, #0.0
	WORD $0x6ea1e7d1 // fcmgt v17.4s, v30.4s, v1.4s
	VAND V17.B16, V13.B16, V13.B16
	VAND V13.B16, V5.B16, V5.B16
	VFMLA V31.S4, V5.S4, V9.S4
	WORD $0x4ea0c84e // fcmgt v14.4s, v2.4s, #0.0
	WORD $0x6ea2e7d2 // fcmgt v18.4s, v30.4s, v2.4s
	VAND V18.B16, V14.B16, V14.B16
	VAND V14.B16, V6.B16, V6.B16
	VFMLA V31.S4, V6.S4, V10.S4
	WORD $0x4ea0c86f // fcmgt v15.4s, v3.4s, #0.0
	WORD $0x6ea3e7d3 // fcmgt v19.4s, v30.4s, v3.4s
	VAND V19.B16, V15.B16, V15.B16
	VAND V15.B16, V7.B16, V7.B16
	VFMLA V31.S4, V7.S4, V11.S4
	VST1.P [V8.S4, V9.S4, V10.S4, V11.S4], 64(R0)
	SUB $16, R3
	B ssb616

ssb64:
	CMP $4, R3
	BLT ssb61
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V4.S4]
	VLD1.P 16(R4), [V8.S4]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	WORD $0x6ea0e7d0 // fcmgt v16.4s, v30.4s, v0.4s
	VAND V16.B16, V12.B16, V12.B16
	VAND V12.B16, V4.B16, V4.B16
	VFMLA V31.S4, V4.S4, V8.S4
	VST1.P [V8.S4], 16(R0)
	SUB $4, R3
	B ssb64

ssb61:
	CBZ R3, ssb6done
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V4.S[0]
	VLD1.P 4(R4), V8.S[0]
	WORD $0x4ea0c80c // fcmgt v12.4s, v0.4s, #0.0
	WORD $0x6ea0e7d0 // fcmgt v16.4s, v30.4s, v0.4s
	VAND V16.B16, V12.B16, V12.B16
	VAND V12.B16, V4.B16, V4.B16
	VFMLA V31.S4, V4.S4, V8.S4
	VST1.P V8.S[0], 4(R0)
	SUB $1, R3
	B ssb61

ssb6done:
	RET
