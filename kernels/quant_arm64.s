// NEON twins of FakeQuant, its backward, QuantErrorLp and AdaRound's soft
// rounding with its backward (docs/DESIGN.md, "BRECQ"): q(x) =
// (clamp(round(x/delta) + zp, 0, qmax) - zp) * delta with a true division
// and FRINTN (round half to even), as torch. Written by hand; vector
// instructions the Go assembler lacks are WORD encodings with the
// instruction in the comment.

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

// Constants of quantErrorLpNEON, four per register.
// V21: mantissa mask, 127, smallest normal, 1023.0
DATA powconst<>+0(SB)/4, $0x007fffff
DATA powconst<>+4(SB)/4, $0x0000007f
DATA powconst<>+8(SB)/4, $0x00800000
DATA powconst<>+12(SB)/4, $0x447fc000
// V22: 2/ln 2, sqrt 2, 0.5, 1
DATA powconst<>+16(SB)/4, $0x4038aa3b
DATA powconst<>+20(SB)/4, $0x3fb504f3
DATA powconst<>+24(SB)/4, $0x3f000000
DATA powconst<>+28(SB)/4, $0x3f800000
// V23: 1/9, 1/7, 1/5, 1/3
DATA powconst<>+32(SB)/4, $0x3de38e39
DATA powconst<>+36(SB)/4, $0x3e124925
DATA powconst<>+40(SB)/4, $0x3e4ccccd
DATA powconst<>+44(SB)/4, $0x3eaaaaab
// V24: Taylor terms ln2^j/j! of 2^r, j = 7..4
DATA powconst<>+48(SB)/4, $0x377fe5fe
DATA powconst<>+52(SB)/4, $0x39218489
DATA powconst<>+56(SB)/4, $0x3aaec3ff
DATA powconst<>+60(SB)/4, $0x3c1d955b
// V25: the same, j = 3..0
DATA powconst<>+64(SB)/4, $0x3d635847
DATA powconst<>+68(SB)/4, $0x3e75fdf0
DATA powconst<>+72(SB)/4, $0x3f317218
DATA powconst<>+76(SB)/4, $0x3f800000
GLOBL powconst<>(SB), RODATA|NOPTR, $80

// POWERLP turns the four floats x in V0 into |x - q(x)|^p = e * 2^n with
// e in V17 (zero where |x - q(x)| is not a normal float32) and the
// float64 scale 2^n in V18 (lanes 0, 1) and V19 (lanes 2, 3). The method
// is that of the AVX2 kernel (asm/quant): m*2^k split, atanh series for
// log2 m, exact FMA split of p*k, degree-7 Taylor polynomial of 2^r.
#define POWERLP \
	WORD $0x6e3ffc01 /* fdiv v1.4s, v0.4s, v31.4s */; \
	WORD $0x4e218821 /* frintn v1.4s, v1.4s */; \
	WORD $0x4e3ed421 /* fadd v1.4s, v1.4s, v30.4s */; \
	WORD $0x4e3cf421 /* fmax v1.4s, v1.4s, v28.4s */; \
	WORD $0x4ebdf421 /* fmin v1.4s, v1.4s, v29.4s */; \
	WORD $0x4ebed421 /* fsub v1.4s, v1.4s, v30.4s */; \
	WORD $0x6e3fdc21 /* fmul v1.4s, v1.4s, v31.4s */; \
	WORD $0x4ea1d401 /* fsub v1.4s, v0.4s, v1.4s */; \
	WORD $0x4ea0f821 /* fabs v1.4s, v1.4s */; \
	VDUP V21.S[2], V2.S4; \
	WORD $0x6e22e423 /* fcmge v3.4s, v1.4s, v2.4s */; \
	VUSHR $23, V1.S4, V4.S4; \
	VDUP V21.S[1], V2.S4; \
	VSUB V2.S4, V4.S4, V4.S4; \
	WORD $0x4e21d884 /* scvtf v4.4s, v4.4s */; \
	VDUP V21.S[0], V2.S4; \
	VAND V2.B16, V1.B16, V5.B16; \
	VDUP V22.S[3], V6.S4; \
	VORR V6.B16, V5.B16, V5.B16; \
	VDUP V22.S[1], V2.S4; \
	WORD $0x6ea2e4a7 /* fcmgt v7.4s, v5.4s, v2.4s */; \
	VAND V6.B16, V7.B16, V2.B16; \
	WORD $0x4e22d484 /* fadd v4.4s, v4.4s, v2.4s */; \
	VDUP V22.S[2], V2.S4; \
	VORR V7.B16, V7.B16, V8.B16; \
	VBSL V6.B16, V2.B16, V8.B16; \
	WORD $0x6e28dca5 /* fmul v5.4s, v5.4s, v8.4s */; \
	WORD $0x4ea6d4a8 /* fsub v8.4s, v5.4s, v6.4s */; \
	WORD $0x4e26d4a9 /* fadd v9.4s, v5.4s, v6.4s */; \
	WORD $0x6e29fd08 /* fdiv v8.4s, v8.4s, v9.4s */; \
	WORD $0x6e28dd09 /* fmul v9.4s, v8.4s, v8.4s */; \
	VDUP V23.S[0], V10.S4; \
	VDUP V23.S[1], V11.S4; \
	VFMLA V9.S4, V10.S4, V11.S4; \
	VDUP V23.S[2], V10.S4; \
	VFMLA V9.S4, V11.S4, V10.S4; \
	VDUP V23.S[3], V11.S4; \
	VFMLA V9.S4, V10.S4, V11.S4; \
	VORR V6.B16, V6.B16, V10.B16; \
	VFMLA V9.S4, V11.S4, V10.S4; \
	WORD $0x6e28dd4a /* fmul v10.4s, v10.4s, v8.4s */; \
	VDUP V22.S[0], V2.S4; \
	WORD $0x6e22dd4a /* fmul v10.4s, v10.4s, v2.4s */; \
	WORD $0x6e24df6b /* fmul v11.4s, v27.4s, v4.4s */; \
	WORD $0x6ea0f96c /* fneg v12.4s, v11.4s */; \
	VFMLA V27.S4, V4.S4, V12.S4; \
	WORD $0x4e21896d /* frintn v13.4s, v11.4s */; \
	WORD $0x4eadd56e /* fsub v14.4s, v11.4s, v13.4s */; \
	WORD $0x4e2cd5ce /* fadd v14.4s, v14.4s, v12.4s */; \
	VFMLA V27.S4, V10.S4, V14.S4; \
	WORD $0x4e2189cf /* frintn v15.4s, v14.4s */; \
	WORD $0x4eafd5ce /* fsub v14.4s, v14.4s, v15.4s */; \
	WORD $0x4e2fd5ad /* fadd v13.4s, v13.4s, v15.4s */; \
	VDUP V24.S[0], V16.S4; \
	VDUP V24.S[1], V17.S4; \
	VFMLA V14.S4, V16.S4, V17.S4; \
	VDUP V24.S[2], V16.S4; \
	VFMLA V14.S4, V17.S4, V16.S4; \
	VDUP V24.S[3], V17.S4; \
	VFMLA V14.S4, V16.S4, V17.S4; \
	VDUP V25.S[0], V16.S4; \
	VFMLA V14.S4, V17.S4, V16.S4; \
	VDUP V25.S[1], V17.S4; \
	VFMLA V14.S4, V16.S4, V17.S4; \
	VDUP V25.S[2], V16.S4; \
	VFMLA V14.S4, V17.S4, V16.S4; \
	VDUP V25.S[3], V17.S4; \
	VFMLA V14.S4, V16.S4, V17.S4; \
	VAND V3.B16, V17.B16, V17.B16; \
	VDUP V21.S[3], V2.S4; \
	WORD $0x4e22d5ad /* fadd v13.4s, v13.4s, v2.4s */; \
	WORD $0x4ea1b9ad /* fcvtzs v13.4s, v13.4s */; \
	WORD $0x0f20a5b2 /* sxtl v18.2d, v13.2s */; \
	WORD $0x4f20a5b3 /* sxtl2 v19.2d, v13.4s */; \
	VSHL $52, V18.D2, V18.D2; \
	VSHL $52, V19.D2, V19.D2

// func quantErrorLpNEON(x []float32, delta, zp, qmax, p float32) float64
// quantErrorLpNEON returns sum |x[i] - q(x[i])|^p over len(x) floats,
// accumulated in float64; 0 < p <= 7.
TEXT ·quantErrorLpNEON(SB), NOSPLIT, $0-48
	MOVD  x_base+0(FP), R1
	MOVD  x_len+8(FP), R3
	FMOVS delta+24(FP), F31
	FMOVS zp+28(FP), F30
	FMOVS qmax+32(FP), F29
	FMOVS p+36(FP), F27
	VDUP  V31.S[0], V31.S4
	VDUP  V30.S[0], V30.S4
	VDUP  V29.S[0], V29.S4
	VDUP  V27.S[0], V27.S4
	VEOR  V28.B16, V28.B16, V28.B16
	VEOR  V20.B16, V20.B16, V20.B16
	VEOR  V26.B16, V26.B16, V26.B16
	MOVD  $powconst<>(SB), R6
	VLD1.P 64(R6), [V21.S4, V22.S4, V23.S4, V24.S4]
	VLD1  (R6), [V25.S4]

qel4:
	CMP    $4, R3
	BLT    qel1
	VLD1.P 16(R1), [V0.S4]
	POWERLP
	WORD $0x0e617a30 // fcvtl v16.2d, v17.2s
	WORD $0x4e617a31 // fcvtl2 v17.2d, v17.4s
	VFMLA  V18.D2, V16.D2, V20.D2
	VFMLA  V19.D2, V17.D2, V26.D2
	SUB    $4, R3
	B      qel4

qel1:
	CBZ    R3, qeldone
	VLD1.P 4(R1), V0.S[0]
	VDUP   V0.S[0], V0.S4
	POWERLP
	WORD $0x0e617a30 // fcvtl v16.2d, v17.2s
	MOVD   ZR, R7
	VMOV   R7, V16.D[1]
	VFMLA  V18.D2, V16.D2, V20.D2
	SUB    $1, R3
	B      qel1

qeldone:
	WORD $0x4e7ad694 // fadd v20.2d, v20.2d, v26.2d
	WORD $0x7e70da94 // faddp d20, v20.2d
	FMOVD F20, ret+40(FP)
	RET

// FQGRAD computes, for the four floats x in V0, the LSQ derivative
// dq/ddelta in V10 (round(x/delta) - x/delta inside the range, the clamped
// level minus zp outside) and the clamped lanes in V11. It needs delta,
// zp, qmax, 0, -zp and qmax-zp in V31..V26.
#define FQGRAD \
	WORD $0x6e3ffc03 /* fdiv v3.4s, v0.4s, v31.4s */; \
	WORD $0x4e218864 /* frintn v4.4s, v3.4s */; \
	WORD $0x4e3ed485 /* fadd v5.4s, v4.4s, v30.4s */; \
	WORD $0x4ea0e8a6 /* fcmlt v6.4s, v5.4s, #0.0 */; \
	WORD $0x6ebde4a7 /* fcmgt v7.4s, v5.4s, v29.4s */; \
	WORD $0x4ea3d488 /* fsub v8.4s, v4.4s, v3.4s */; \
	VORR V6.B16, V6.B16, V9.B16; \
	VBSL V8.B16, V27.B16, V9.B16; \
	VORR V7.B16, V7.B16, V10.B16; \
	VBSL V9.B16, V26.B16, V10.B16; \
	VORR V6.B16, V7.B16, V11.B16

// FQSETUP loads the parameters at offset off of the frame into V31..V26
// and zeroes the float64 accumulators V24, V25.
#define FQSETUP(off) \
	FMOVS delta+off(FP), F31; \
	FMOVS zp+(off+4)(FP), F30; \
	FMOVS qmax+(off+8)(FP), F29; \
	VDUP V31.S[0], V31.S4; \
	VDUP V30.S[0], V30.S4; \
	VDUP V29.S[0], V29.S4; \
	VEOR V28.B16, V28.B16, V28.B16; \
	WORD $0x4ebed79b /* fsub v27.4s, v28.4s, v30.4s */; \
	WORD $0x4ebed7ba /* fsub v26.4s, v29.4s, v30.4s */; \
	VEOR V24.B16, V24.B16, V24.B16; \
	VEOR V25.B16, V25.B16, V25.B16

// FQACC adds dy (V1) times dq/ddelta (V10) to the float64 accumulators.
#define FQACC \
	WORD $0x0e61794d /* fcvtl v13.2d, v10.2s */; \
	WORD $0x4e61794e /* fcvtl2 v14.2d, v10.4s */; \
	WORD $0x0e61782f /* fcvtl v15.2d, v1.2s */; \
	WORD $0x4e617830 /* fcvtl2 v16.2d, v1.4s */; \
	VFMLA V13.D2, V15.D2, V24.D2; \
	VFMLA V14.D2, V16.D2, V25.D2

// FQACC1 adds lane 0 only of dy (V1) times dq/ddelta (V10).
#define FQACC1 \
	WORD $0x0e61794d /* fcvtl v13.2d, v10.2s */; \
	WORD $0x0e61782f /* fcvtl v15.2d, v1.2s */; \
	MOVD ZR, R7; \
	VMOV R7, V15.D[1]; \
	VFMLA V13.D2, V15.D2, V24.D2

// func fakeQuantBackwardNEON(x, dy, dx []float32, delta, zp, qmax float32) float64
// fakeQuantBackwardNEON accumulates dx[i] += dy[i] where x[i] is not
// clamped and returns the gradient of delta, sum dy[i]*dq(x[i])/ddelta,
// in float64.
TEXT ·fakeQuantBackwardNEON(SB), NOSPLIT, $0-96
	MOVD x_base+0(FP), R1
	MOVD x_len+8(FP), R3
	MOVD dy_base+24(FP), R2
	MOVD dx_base+48(FP), R0
	MOVD R0, R4
	FQSETUP(72)

fqb4:
	CMP    $4, R3
	BLT    fqb1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V1.S4]
	VLD1.P 16(R4), [V2.S4]
	FQGRAD
	WORD $0x4e6b1c2c // bic v12.16b, v1.16b, v11.16b
	WORD $0x4e2cd442 // fadd v2.4s, v2.4s, v12.4s
	VST1.P [V2.S4], 16(R0)
	FQACC
	SUB    $4, R3
	B      fqb4

fqb1:
	CBZ    R3, fqbdone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V1.S[0]
	VLD1.P 4(R4), V2.S[0]
	VDUP   V0.S[0], V0.S4
	VDUP   V1.S[0], V1.S4
	FQGRAD
	WORD $0x4e6b1c2c // bic v12.16b, v1.16b, v11.16b
	WORD $0x4e2cd442 // fadd v2.4s, v2.4s, v12.4s
	VST1.P V2.S[0], 4(R0)
	FQACC1
	SUB    $1, R3
	B      fqb1

fqbdone:
	WORD $0x4e79d718 // fadd v24.2d, v24.2d, v25.2d
	WORD $0x7e70db18 // faddp d24, v24.2d
	FMOVD F24, ret+88(FP)
	RET

// func fakeQuantDeltaGradNEON(x, dy []float32, delta, zp, qmax float32) float64
// fakeQuantDeltaGradNEON returns the gradient of delta, sum
// dy[i]*dq(x[i])/ddelta, in float64.
TEXT ·fakeQuantDeltaGradNEON(SB), NOSPLIT, $0-72
	MOVD x_base+0(FP), R1
	MOVD x_len+8(FP), R3
	MOVD dy_base+24(FP), R2
	FQSETUP(48)

fqd4:
	CMP    $4, R3
	BLT    fqd1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V1.S4]
	FQGRAD
	FQACC
	SUB    $4, R3
	B      fqd4

fqd1:
	CBZ    R3, fqddone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V1.S[0]
	VDUP   V0.S[0], V0.S4
	VDUP   V1.S[0], V1.S4
	FQGRAD
	FQACC1
	SUB    $1, R3
	B      fqd1

fqddone:
	WORD $0x4e79d718 // fadd v24.2d, v24.2d, v25.2d
	WORD $0x7e70db18 // faddp d24, v24.2d
	FMOVD F24, ret+64(FP)
	RET

// Constants of the AdaRound kernels, four per register.
// V22: -1/ln 2, 125, -125, 1.2; V23: 0.1, 127, 1, 0;
// V24, V25: Taylor terms ln2^j/j! of 2^r, j = 7..0.
DATA adaconst<>+0(SB)/4, $0xbfb8aa3b
DATA adaconst<>+4(SB)/4, $0x42fa0000
DATA adaconst<>+8(SB)/4, $0xc2fa0000
DATA adaconst<>+12(SB)/4, $0x3f99999a
DATA adaconst<>+16(SB)/4, $0x3dcccccd
DATA adaconst<>+20(SB)/4, $0x0000007f
DATA adaconst<>+24(SB)/4, $0x3f800000
DATA adaconst<>+28(SB)/4, $0x00000000
DATA adaconst<>+32(SB)/4, $0x377fe5fe
DATA adaconst<>+36(SB)/4, $0x39218489
DATA adaconst<>+40(SB)/4, $0x3aaec3ff
DATA adaconst<>+44(SB)/4, $0x3c1d955b
DATA adaconst<>+48(SB)/4, $0x3d635847
DATA adaconst<>+52(SB)/4, $0x3e75fdf0
DATA adaconst<>+56(SB)/4, $0x3f317218
DATA adaconst<>+60(SB)/4, $0x3f800000
GLOBL adaconst<>(SB), RODATA|NOPTR, $64

// SIGMOID sets V2 = 1/(1+exp(-a)) for the four floats a in V1, with
// exp(-a) = 2^(-a/ln 2), the exponent clamped to [-125, 125] where the
// sigmoid is 0 or 1 in float32 anyway; temporaries V3..V6.
#define SIGMOID \
	VDUP V22.S[0], V3.S4; \
	WORD $0x6e23dc23 /* fmul v3.4s, v1.4s, v3.4s */; \
	VDUP V22.S[1], V4.S4; \
	WORD $0x4ea4f463 /* fmin v3.4s, v3.4s, v4.4s */; \
	VDUP V22.S[2], V4.S4; \
	WORD $0x4e24f463 /* fmax v3.4s, v3.4s, v4.4s */; \
	WORD $0x4e218864 /* frintn v4.4s, v3.4s */; \
	WORD $0x4ea4d463 /* fsub v3.4s, v3.4s, v4.4s */; \
	VDUP V24.S[0], V5.S4; \
	VDUP V24.S[1], V6.S4; \
	VFMLA V3.S4, V5.S4, V6.S4; \
	VDUP V24.S[2], V5.S4; \
	VFMLA V3.S4, V6.S4, V5.S4; \
	VDUP V24.S[3], V6.S4; \
	VFMLA V3.S4, V5.S4, V6.S4; \
	VDUP V25.S[0], V5.S4; \
	VFMLA V3.S4, V6.S4, V5.S4; \
	VDUP V25.S[1], V6.S4; \
	VFMLA V3.S4, V5.S4, V6.S4; \
	VDUP V25.S[2], V5.S4; \
	VFMLA V3.S4, V6.S4, V5.S4; \
	VDUP V25.S[3], V6.S4; \
	VFMLA V3.S4, V5.S4, V6.S4; \
	WORD $0x4ea1b884 /* fcvtzs v4.4s, v4.4s */; \
	VDUP V23.S[1], V5.S4; \
	VADD V5.S4, V4.S4, V4.S4; \
	VSHL $23, V4.S4, V4.S4; \
	WORD $0x6e24dcc6 /* fmul v6.4s, v6.4s, v4.4s */; \
	WORD $0x4e3bd4c6 /* fadd v6.4s, v6.4s, v27.4s */; \
	WORD $0x6e26ff62 /* fdiv v2.4s, v27.4s, v6.4s */

// SOFTROUND sets, from s in V2, the unclamped v = 1.2s - 0.1 in V3 and
// h = clamp(v, 0, 1) in V4 (docs/DESIGN.md, "BRECQ", step 4).
#define SOFTROUND \
	VDUP V22.S[3], V4.S4; \
	WORD $0x6e24dc43 /* fmul v3.4s, v2.4s, v4.4s */; \
	VDUP V23.S[0], V4.S4; \
	WORD $0x4ea4d463 /* fsub v3.4s, v3.4s, v4.4s */; \
	WORD $0x4e3cf464 /* fmax v4.4s, v3.4s, v28.4s */; \
	WORD $0x4ebbf484 /* fmin v4.4s, v4.4s, v27.4s */

// LEVEL sets V5 = floor(w/delta) + h + zp for w in V0 and h in V4.
#define LEVEL \
	WORD $0x6e3ffc05 /* fdiv v5.4s, v0.4s, v31.4s */; \
	WORD $0x4e2198a5 /* frintm v5.4s, v5.4s */; \
	WORD $0x4e24d4a5 /* fadd v5.4s, v5.4s, v4.4s */; \
	WORD $0x4e3ed4a5 /* fadd v5.4s, v5.4s, v30.4s */

// ADASETUP loads delta, zp and qmax at offset off of the frame into
// V31..V29, zero and one into V28 and V27, and the constants into V22..V25.
#define ADASETUP(off) \
	FMOVS delta+off(FP), F31; \
	FMOVS zp+(off+4)(FP), F30; \
	FMOVS qmax+(off+8)(FP), F29; \
	VDUP V31.S[0], V31.S4; \
	VDUP V30.S[0], V30.S4; \
	VDUP V29.S[0], V29.S4; \
	VEOR V28.B16, V28.B16, V28.B16; \
	MOVD $adaconst<>(SB), R6; \
	VLD1 (R6), [V22.S4, V23.S4, V24.S4, V25.S4]; \
	VDUP V23.S[2], V27.S4

// FORWARD sets V5 = (clamp(LEVEL, 0, qmax) - zp) * delta for w in V0 and
// alpha in V1.
#define FORWARD \
	SIGMOID; \
	SOFTROUND; \
	LEVEL; \
	WORD $0x4e3cf4a5 /* fmax v5.4s, v5.4s, v28.4s */; \
	WORD $0x4ebdf4a5 /* fmin v5.4s, v5.4s, v29.4s */; \
	WORD $0x4ebed4a5 /* fsub v5.4s, v5.4s, v30.4s */; \
	WORD $0x6e3fdca5 /* fmul v5.4s, v5.4s, v31.4s */

// func adaRoundForwardNEON(dst, w, alpha []float32, delta, zp, qmax float32)
// adaRoundForwardNEON sets dst[i] = (clamp(floor(w[i]/delta) + h(alpha[i]) + zp,
// 0, qmax) - zp) * delta over len(dst) floats.
TEXT ·adaRoundForwardNEON(SB), NOSPLIT, $0-84
	MOVD dst_base+0(FP), R0
	MOVD dst_len+8(FP), R3
	MOVD w_base+24(FP), R1
	MOVD alpha_base+48(FP), R2
	ADASETUP(72)

adf4:
	CMP    $4, R3
	BLT    adf1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V1.S4]
	FORWARD
	VST1.P [V5.S4], 16(R0)
	SUB    $4, R3
	B      adf4

adf1:
	CBZ    R3, adfdone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V1.S[0]
	FORWARD
	VST1.P V5.S[0], 4(R0)
	SUB    $1, R3
	B      adf1

adfdone:
	RET

// BACKWARD adds dy*delta*h'(alpha) to dAlpha in V9 where neither clamp is
// active, for w in V0, alpha in V1 and dy in V7.
#define BACKWARD \
	SIGMOID; \
	SOFTROUND; \
	LEVEL; \
	WORD $0x6ea0c8a6 /* fcmge v6.4s, v5.4s, #0.0 */; \
	WORD $0x6e25e7a8 /* fcmge v8.4s, v29.4s, v5.4s */; \
	VAND V8.B16, V6.B16, V6.B16; \
	WORD $0x6ea0c868 /* fcmge v8.4s, v3.4s, #0.0 */; \
	VAND V8.B16, V6.B16, V6.B16; \
	WORD $0x6e23e768 /* fcmge v8.4s, v27.4s, v3.4s */; \
	VAND V8.B16, V6.B16, V6.B16; \
	WORD $0x4ea2d768 /* fsub v8.4s, v27.4s, v2.4s */; \
	WORD $0x6e22dd08 /* fmul v8.4s, v8.4s, v2.4s */; \
	VDUP V22.S[3], V4.S4; \
	WORD $0x6e24dd08 /* fmul v8.4s, v8.4s, v4.4s */; \
	WORD $0x6e3fdce7 /* fmul v7.4s, v7.4s, v31.4s */; \
	WORD $0x6e28dce7 /* fmul v7.4s, v7.4s, v8.4s */; \
	VAND V6.B16, V7.B16, V7.B16; \
	WORD $0x4e27d529 /* fadd v9.4s, v9.4s, v7.4s */

// func adaRoundBackwardNEON(w, alpha, dy, dAlpha []float32, delta, zp, qmax float32)
// adaRoundBackwardNEON accumulates dAlpha[i] += dy[i]*delta*h'(alpha[i]) over
// len(dAlpha) floats where neither clamp is active.
TEXT ·adaRoundBackwardNEON(SB), NOSPLIT, $0-108
	MOVD w_base+0(FP), R1
	MOVD alpha_base+24(FP), R2
	MOVD dy_base+48(FP), R4
	MOVD dAlpha_base+72(FP), R0
	MOVD dAlpha_len+80(FP), R3
	MOVD R0, R5
	ADASETUP(96)

adb4:
	CMP    $4, R3
	BLT    adb1
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R2), [V1.S4]
	VLD1.P 16(R4), [V7.S4]
	VLD1.P 16(R5), [V9.S4]
	BACKWARD
	VST1.P [V9.S4], 16(R0)
	SUB    $4, R3
	B      adb4

adb1:
	CBZ    R3, adbdone
	VLD1.P 4(R1), V0.S[0]
	VLD1.P 4(R2), V1.S[0]
	VLD1.P 4(R4), V7.S[0]
	VLD1.P 4(R5), V9.S[0]
	BACKWARD
	VST1.P V9.S[0], 4(R0)
	SUB    $1, R3
	B      adb1

adbdone:
	RET
