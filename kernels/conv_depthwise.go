package kernels

// Direct depthwise kernels (SPEC section 1, kernels: depthwise 3x3 stride
// 1 and 2, forward and both backwards), one plane at a time.
var (
	dwPlaneForward        = dwPlaneForwardGeneric
	dwPlaneBackwardData   = dwPlaneBackwardDataGeneric
	dwPlaneBackwardWeight = dwPlaneBackwardWeightGeneric
)
