package kernels

// Assembly generators (docs/DESIGN.md, "Kernels"): `go generate ./...` rewrites
// every generated .s file and its Go stubs byte for byte.

//go:generate go run ../asm/gemm -out gemm_amd64.s -stubs gemm_stubs_amd64.go
//go:generate go run ../asm/conv -out conv_amd64.s -stubs conv_stubs_amd64.go
//go:generate go run ../asm/elementwise -out elementwise_amd64.s -stubs elementwise_stubs_amd64.go
//go:generate go run ../asm/quant -out quant_amd64.s -stubs quant_stubs_amd64.go
//go:generate go run ../asm/pool -out pool2d_amd64.s -stubs pool2d_stubs_amd64.go
//go:generate go run ../asm/peak -out peak_amd64.s -stubs peak_stubs_amd64.go
