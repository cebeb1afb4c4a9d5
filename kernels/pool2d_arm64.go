package kernels

// poolNEON is the NEON path's pooling table: no kernel of its own, the
// Go loops.
var poolNEON = poolKernels{}
