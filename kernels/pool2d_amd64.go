package kernels

// poolAVX2 is the AVX2 path's pooling table: 3x3 stride-2 max pooling,
// eight windows a trip.
var poolAVX2 = poolKernels{maxPool3x3S2: maxPool3x3S2AVX2}

// poolAVX512 is the AVX-512 path's pooling table: the AVX2 one until the
// path has kernels of its own.
var poolAVX512 = poolAVX2
