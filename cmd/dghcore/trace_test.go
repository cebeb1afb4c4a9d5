package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/kernels"
)

func TestStartTraces(t *testing.T) {
	var ue *usageError
	if _, err := startTraces("conv,gemm", newReporter(&bytes.Buffer{})); !errors.As(err, &ue) || !strings.Contains(err.Error(), `unknown trace "gemm"`) {
		t.Fatalf("DGHCORE_TRACE=conv,gemm: error %v, want a usage error naming gemm", err)
	}
	var buf bytes.Buffer
	stop, err := startTraces(" Conv ", newReporter(&buf))
	if err != nil {
		t.Fatal(err)
	}
	conv := func(h int) {
		p := kernels.ConvParams{N: 1, C: 2, H: h, W: h, K: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1}
		kernels.Conv2dForward(p, make([]float32, 2*h*h), make([]float32, 3*2*9), nil, make([]float32, 3*h*h))
	}
	conv(5)
	conv(5)
	stop()
	conv(6)
	if got := buf.String(); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "conv 1x2x5x5->3 k3x3 s1x1 p1x1 d1x1 g1 forward on ") {
		t.Errorf("trace of a convolution run twice, then another after stop:\n%s", got)
	}
}
