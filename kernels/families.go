package kernels

// familySetters lists, for use, the function of each kernel family that
// points its implementation variables at one path. A family whose every
// path is the generic one has no entry.
var familySetters = []func(Path){
	setGEMMPath,        // gemm_*.go
	setConvPath,        // conv_*.go: depthwise rows, im2col stride-2 gather
	setElementwisePath, // elementwise_*.go: elementwise, reduce, bn
	setQuantPath,       // quant_*.go
}
