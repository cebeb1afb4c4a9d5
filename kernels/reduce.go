package kernels

// Reductions over whole slices and over the rows of a matrix.

// Sum returns the sum of x, accumulated in float64.
func Sum(x []float32) float32 { return float32(reduce(active.elementwise.sum, x)) }

// SumSquares returns the sum of x[i]^2, accumulated in float64.
func SumSquares(x []float32) float32 { return float32(reduce(active.elementwise.sumSquares, x)) }

// reduce adds fn over the blocks of x, in block order.
func reduce(fn func(x []float32) float64, x []float32) float64 {
	n := len(x)
	if n <= blockFloats {
		return fn(x)
	}
	t := newTask(reduceBlocks)
	t.s[0] = x
	t.fnR = fn
	t.partials(numBlocks(n))
	t.spread(numBlocks(n), n)
	s := t.sumPartials()
	t.release()
	return s
}

func reduceBlocks(t *task, lo, hi int) {
	x := t.s[0]
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(x))
		t.part[k] = t.fnR(x[i:j])
	}
}

// RowMaxMin writes, for each of the rows of the rows x cols matrix x, its
// largest and smallest value and their column indices (first occurrence
// wins, as in torch.max / torch.min along a dimension). Any of max, min,
// argMax and argMin may be nil. cols must be at least 1.
func RowMaxMin(rows, cols int, x []float32, max, min []float32, argMax, argMin []int32) {
	x = x[:rows*cols]
	for r := range rows {
		row := x[r*cols : (r+1)*cols]
		hi, lo := row[0], row[0]
		var ihi, ilo int
		for j, v := range row[1:] {
			if v > hi {
				hi, ihi = v, j+1
			}
			if v < lo {
				lo, ilo = v, j+1
			}
		}
		if max != nil {
			max[r] = hi
		}
		if min != nil {
			min[r] = lo
		}
		if argMax != nil {
			argMax[r] = int32(ihi)
		}
		if argMin != nil {
			argMin[r] = int32(ilo)
		}
	}
}
