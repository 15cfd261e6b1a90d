#include "textflag.h"

// func sum32AVX2(b []byte) uint64
// Adds the little-endian 32-bit words of b (len(b) a multiple of 64) as
// exact integers: each is widened to 64 bits, so nothing carries out.
TEXT ·sum32AVX2(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y15, Y15, Y15

loop:
	CMPQ CX, $64
	JB   done
	VMOVDQU (SI), Y4
	VMOVDQU 32(SI), Y5
	VPUNPCKLDQ Y15, Y4, Y6
	VPUNPCKHDQ Y15, Y4, Y7
	VPUNPCKLDQ Y15, Y5, Y8
	VPUNPCKHDQ Y15, Y5, Y9
	VPADDQ Y6, Y0, Y0
	VPADDQ Y7, Y1, Y1
	VPADDQ Y8, Y2, Y2
	VPADDQ Y9, Y3, Y3
	ADDQ $64, SI
	SUBQ $64, CX
	JMP  loop

done:
	VPADDQ Y1, Y0, Y0
	VPADDQ Y3, Y2, Y2
	VPADDQ Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDQ X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDQ X1, X0, X0
	VMOVQ X0, AX
	VZEROUPPER
	MOVQ AX, ret+24(FP)
	RET

// func cpuid(leaf, sub uint32) (a, b, c, d uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, a+8(FP)
	MOVL BX, b+12(FP)
	MOVL CX, c+16(FP)
	MOVL DX, d+20(FP)
	RET

// func xgetbv0() (a, d uint32)
TEXT ·xgetbv0(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, a+0(FP)
	MOVL DX, d+4(FP)
	RET
