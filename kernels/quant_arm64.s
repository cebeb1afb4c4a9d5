// NEON twin of FakeQuant (SPEC section 4): q(x) = (clamp(round(x/delta)
// + zp, 0, qmax) - zp) * delta with a true division and FRINTN (round
// half to even), as torch. Written by hand; vector instructions the Go
// assembler lacks are WORD encodings with the instruction in the comment.

#include "textflag.h"

// func fakeQuantNEON(dst, x []float32, delta, zp, qmax float32)
TEXT ·fakeQuantNEON(SB), NOSPLIT, $0-60
	MOVD  dst_base+0(FP), R0
	MOVD  dst_len+8(FP), R2
	MOVD  x_base+24(FP), R1
	FMOVS delta+48(FP), F0
	FMOVS zp+52(FP), F1
	FMOVS qmax+56(FP), F2
	VDUP  V0.S[0], V0.S4
	VDUP  V1.S[0], V1.S4
	VDUP  V2.S[0], V2.S4
	VEOR  V3.B16, V3.B16, V3.B16

fq16:
	CMP    $16, R2
	BLT    fq4
	VLD1.P 64(R1), [V4.S4, V5.S4, V6.S4, V7.S4]
	WORD $0x6e20fc84 // fdiv v4.4s, v4.4s, v0.4s
	WORD $0x6e20fca5 // fdiv v5.4s, v5.4s, v0.4s
	WORD $0x6e20fcc6 // fdiv v6.4s, v6.4s, v0.4s
	WORD $0x6e20fce7 // fdiv v7.4s, v7.4s, v0.4s
	WORD $0x4e218884 // frintn v4.4s, v4.4s
	WORD $0x4e2188a5 // frintn v5.4s, v5.4s
	WORD $0x4e2188c6 // frintn v6.4s, v6.4s
	WORD $0x4e2188e7 // frintn v7.4s, v7.4s
	WORD $0x4e21d484 // fadd v4.4s, v4.4s, v1.4s
	WORD $0x4e21d4a5 // fadd v5.4s, v5.4s, v1.4s
	WORD $0x4e21d4c6 // fadd v6.4s, v6.4s, v1.4s
	WORD $0x4e21d4e7 // fadd v7.4s, v7.4s, v1.4s
	WORD $0x4e23f484 // fmax v4.4s, v4.4s, v3.4s
	WORD $0x4e23f4a5 // fmax v5.4s, v5.4s, v3.4s
	WORD $0x4e23f4c6 // fmax v6.4s, v6.4s, v3.4s
	WORD $0x4e23f4e7 // fmax v7.4s, v7.4s, v3.4s
	WORD $0x4ea2f484 // fmin v4.4s, v4.4s, v2.4s
	WORD $0x4ea2f4a5 // fmin v5.4s, v5.4s, v2.4s
	WORD $0x4ea2f4c6 // fmin v6.4s, v6.4s, v2.4s
	WORD $0x4ea2f4e7 // fmin v7.4s, v7.4s, v2.4s
	WORD $0x4ea1d484 // fsub v4.4s, v4.4s, v1.4s
	WORD $0x4ea1d4a5 // fsub v5.4s, v5.4s, v1.4s
	WORD $0x4ea1d4c6 // fsub v6.4s, v6.4s, v1.4s
	WORD $0x4ea1d4e7 // fsub v7.4s, v7.4s, v1.4s
	WORD $0x6e20dc84 // fmul v4.4s, v4.4s, v0.4s
	WORD $0x6e20dca5 // fmul v5.4s, v5.4s, v0.4s
	WORD $0x6e20dcc6 // fmul v6.4s, v6.4s, v0.4s
	WORD $0x6e20dce7 // fmul v7.4s, v7.4s, v0.4s
	VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R0)
	SUB    $16, R2
	B      fq16

fq4:
	CMP    $4, R2
	BLT    fq1
	VLD1.P 16(R1), [V4.S4]
	WORD $0x6e20fc84 // fdiv v4.4s, v4.4s, v0.4s
	WORD $0x4e218884 // frintn v4.4s, v4.4s
	WORD $0x4e21d484 // fadd v4.4s, v4.4s, v1.4s
	WORD $0x4e23f484 // fmax v4.4s, v4.4s, v3.4s
	WORD $0x4ea2f484 // fmin v4.4s, v4.4s, v2.4s
	WORD $0x4ea1d484 // fsub v4.4s, v4.4s, v1.4s
	WORD $0x6e20dc84 // fmul v4.4s, v4.4s, v0.4s
	VST1.P [V4.S4], 16(R0)
	SUB    $4, R2
	B      fq4

fq1:
	CBZ     R2, fqdone
	FMOVS.P 4(R1), F4
	FDIVS   F0, F4, F4
	FRINTNS F4, F4
	FADDS   F1, F4, F4
	FMAXS   F3, F4, F4
	FMINS   F2, F4, F4
	FSUBS   F1, F4, F4
	FMULS   F0, F4, F4
	FMOVS.P F4, 4(R0)
	SUB     $1, R2
	B       fq1

fqdone:
	RET
