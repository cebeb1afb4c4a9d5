// NEON twins of the hot elementwise kernels (SPEC section 1). Written by
// hand; vector instructions the Go assembler lacks (FADD, FMAX, ... on
// .4S) are WORD encodings, each with its instruction in the comment.
// Loops take 16 floats (four vectors) per iteration, then 4, then one
// float at a time.

#include "textflag.h"

// func axpyNEON(alpha float32, x, y []float32)
TEXT ·axpyNEON(SB), NOSPLIT, $0-56
	FMOVS alpha+0(FP), F0
	VDUP  V0.S[0], V0.S4
	MOVD  x_base+8(FP), R0
	MOVD  y_base+32(FP), R1
	MOVD  y_len+40(FP), R2
	MOVD  R1, R3

axpy16:
	CMP    $16, R2
	BLT    axpy4
	VLD1.P 64(R0), [V1.S4, V2.S4, V3.S4, V4.S4]
	VLD1.P 64(R1), [V5.S4, V6.S4, V7.S4, V8.S4]
	VFMLA  V0.S4, V1.S4, V5.S4
	VFMLA  V0.S4, V2.S4, V6.S4
	VFMLA  V0.S4, V3.S4, V7.S4
	VFMLA  V0.S4, V4.S4, V8.S4
	VST1.P [V5.S4, V6.S4, V7.S4, V8.S4], 64(R3)
	SUB    $16, R2
	B      axpy16

axpy4:
	CMP    $4, R2
	BLT    axpy1
	VLD1.P 16(R0), [V1.S4]
	VLD1.P 16(R1), [V5.S4]
	VFMLA  V0.S4, V1.S4, V5.S4
	VST1.P [V5.S4], 16(R3)
	SUB    $4, R2
	B      axpy4

axpy1:
	CBZ     R2, axpydone
	FMOVS.P 4(R0), F1
	FMOVS   (R1), F5
	FMADDS  F0, F5, F1, F5
	FMOVS.P F5, 4(R1)
	SUB     $1, R2
	B       axpy1

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
	CMP    $16, R2
	BLT    dot4
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R1), [V4.S4, V5.S4, V6.S4, V7.S4]
	VFMLA  V4.S4, V0.S4, V16.S4
	VFMLA  V5.S4, V1.S4, V17.S4
	VFMLA  V6.S4, V2.S4, V18.S4
	VFMLA  V7.S4, V3.S4, V19.S4
	SUB    $16, R2
	B      dot16

dot4:
	CMP    $4, R2
	BLT    dotreduce
	VLD1.P 16(R0), [V0.S4]
	VLD1.P 16(R1), [V4.S4]
	VFMLA  V4.S4, V0.S4, V16.S4
	SUB    $4, R2
	B      dot4

dotreduce:
	WORD $0x4e31d610 // fadd v16.4s, v16.4s, v17.4s
	WORD $0x4e33d652 // fadd v18.4s, v18.4s, v19.4s
	WORD $0x4e32d610 // fadd v16.4s, v16.4s, v18.4s
	WORD $0x6e30d610 // faddp v16.4s, v16.4s, v16.4s
	WORD $0x7e30da10 // faddp s16, v16.2s

dot1:
	CBZ     R2, dotdone
	FMOVS.P 4(R0), F0
	FMOVS.P 4(R1), F4
	FMADDS  F4, F16, F0, F16
	SUB     $1, R2
	B       dot1

dotdone:
	FMOVS F16, ret+48(FP)
	RET

// func scaleShiftNEON(y, x []float32, scale, shift, lo, hi float32)
TEXT ·scaleShiftNEON(SB), NOSPLIT, $0-64
	MOVD  y_base+0(FP), R0
	MOVD  y_len+8(FP), R2
	MOVD  x_base+24(FP), R1
	FMOVS scale+48(FP), F0
	FMOVS shift+52(FP), F1
	FMOVS lo+56(FP), F2
	FMOVS hi+60(FP), F3
	VDUP  V0.S[0], V0.S4
	VDUP  V1.S[0], V1.S4
	VDUP  V2.S[0], V2.S4
	VDUP  V3.S[0], V3.S4

ss16:
	CMP    $16, R2
	BLT    ss4
	VLD1.P 64(R1), [V4.S4, V5.S4, V6.S4, V7.S4]
	VORR   V1.B16, V1.B16, V8.B16
	VORR   V1.B16, V1.B16, V9.B16
	VORR   V1.B16, V1.B16, V10.B16
	VORR   V1.B16, V1.B16, V11.B16
	VFMLA  V0.S4, V4.S4, V8.S4
	VFMLA  V0.S4, V5.S4, V9.S4
	VFMLA  V0.S4, V6.S4, V10.S4
	VFMLA  V0.S4, V7.S4, V11.S4
	WORD $0x4e22f508 // fmax v8.4s, v8.4s, v2.4s
	WORD $0x4e22f529 // fmax v9.4s, v9.4s, v2.4s
	WORD $0x4e22f54a // fmax v10.4s, v10.4s, v2.4s
	WORD $0x4e22f56b // fmax v11.4s, v11.4s, v2.4s
	WORD $0x4ea3f508 // fmin v8.4s, v8.4s, v3.4s
	WORD $0x4ea3f529 // fmin v9.4s, v9.4s, v3.4s
	WORD $0x4ea3f54a // fmin v10.4s, v10.4s, v3.4s
	WORD $0x4ea3f56b // fmin v11.4s, v11.4s, v3.4s
	VST1.P [V8.S4, V9.S4, V10.S4, V11.S4], 64(R0)
	SUB    $16, R2
	B      ss16

ss4:
	CMP    $4, R2
	BLT    ss1
	VLD1.P 16(R1), [V4.S4]
	VORR   V1.B16, V1.B16, V8.B16
	VFMLA  V0.S4, V4.S4, V8.S4
	WORD $0x4e22f508 // fmax v8.4s, v8.4s, v2.4s
	WORD $0x4ea3f508 // fmin v8.4s, v8.4s, v3.4s
	VST1.P [V8.S4], 16(R0)
	SUB    $4, R2
	B      ss4

ss1:
	CBZ     R2, ssdone
	FMOVS.P 4(R1), F4
	FMADDS  F0, F1, F4, F8
	FMAXS   F2, F8, F8
	FMINS   F3, F8, F8
	FMOVS.P F8, 4(R0)
	SUB     $1, R2
	B       ss1

ssdone:
	RET
