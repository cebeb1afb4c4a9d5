//go:build race

package kernels

// raceEnabled: under the race detector sync.Pool drops items at random,
// so allocation counts say nothing about the pools.
const raceEnabled = true
