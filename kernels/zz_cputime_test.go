package kernels

import (
	"syscall"
	"time"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuRate runs f n times and returns flops per CPU second in GFLOP/s.
func cpuRate(n int, flops float64, f func()) float64 {
	f()
	t0 := cpuNow()
	for range n {
		f()
	}
	return flops * float64(n) / (cpuNow() - t0).Seconds() / 1e9
}
