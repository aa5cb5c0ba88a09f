#include "textflag.h"

// func addPairsSSE(acc, a, b []complex64, h float32)
// acc[i] += h·(a[i]+b[i]) for i < len(acc): the samples' floats (I, Q)
// eight at a time.
TEXT ·addPairsSSE(SB), NOSPLIT, $0-76
	MOVQ  acc_base+0(FP), DI
	MOVQ  acc_len+8(FP), CX
	SHLQ  $1, CX // floats
	MOVQ  a_base+24(FP), SI
	MOVQ  b_base+48(FP), DX
	MOVSS h+72(FP), X0
	SHUFPS $0, X0, X0

loop8:
	CMPQ   CX, $8
	JLT    tail
	MOVUPS (SI), X1
	MOVUPS 16(SI), X2
	MOVUPS (DX), X3
	MOVUPS 16(DX), X4
	ADDPS  X3, X1
	ADDPS  X4, X2
	MULPS  X0, X1
	MULPS  X0, X2
	MOVUPS (DI), X5
	MOVUPS 16(DI), X6
	ADDPS  X5, X1
	ADDPS  X6, X2
	MOVUPS X1, (DI)
	MOVUPS X2, 16(DI)
	ADDQ   $32, SI
	ADDQ   $32, DX
	ADDQ   $32, DI
	SUBQ   $8, CX
	JMP    loop8

tail:
	TESTQ CX, CX
	JEQ   done
	MOVSS (SI), X1
	ADDSS (DX), X1
	MULSS X0, X1
	ADDSS (DI), X1
	MOVSS X1, (DI)
	ADDQ  $4, SI
	ADDQ  $4, DX
	ADDQ  $4, DI
	DECQ  CX
	JMP   tail

done:
	RET

// func scaleSSE(acc, a []complex64, h float32)
// acc[i] = h·a[i] for i < len(acc).
TEXT ·scaleSSE(SB), NOSPLIT, $0-52
	MOVQ  acc_base+0(FP), DI
	MOVQ  acc_len+8(FP), CX
	SHLQ  $1, CX // floats
	MOVQ  a_base+24(FP), SI
	MOVSS h+48(FP), X0
	SHUFPS $0, X0, X0

sloop8:
	CMPQ   CX, $8
	JLT    stail
	MOVUPS (SI), X1
	MOVUPS 16(SI), X2
	MULPS  X0, X1
	MULPS  X0, X2
	MOVUPS X1, (DI)
	MOVUPS X2, 16(DI)
	ADDQ   $32, SI
	ADDQ   $32, DI
	SUBQ   $8, CX
	JMP    sloop8

stail:
	TESTQ CX, CX
	JEQ   sdone
	MOVSS (SI), X1
	MULSS X0, X1
	MOVSS X1, (DI)
	ADDQ  $4, SI
	ADDQ  $4, DI
	DECQ  CX
	JMP   stail

sdone:
	RET
