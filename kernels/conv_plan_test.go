package kernels

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var updatePlans = flag.Bool("update", false, "rewrite testdata/conv_plans.txt for the paths this machine runs")

// planWorkers are the worker counts the plans are pinned at: one worker,
// and enough that image chunks, slab rounding and task splits show.
var planWorkers = []int{1, 4}

const plansFile = "testdata/conv_plans.txt"

// planCases are the cases of convCases and the layers of the zoo's
// models at batch 32 (DGH's and BRECQ's): resnet18, mobilenet_v2,
// mnasnet, resnet20 on CIFAR-10 and on Fashion-MNIST (28 wide, one
// channel) and at DGH's padded 32+4.
func planCases() []ConvParams {
	models := slices.Concat(resnet18Convs(), mobilenetV2Convs(), mnasnetConvs(), resnet20Convs(3, 32), resnet20Convs(1, 28), resnet20Convs(3, 36))
	for i := range models {
		models[i].N = 32
	}
	// Shapes just inside a threshold that neither table reaches: masked
	// direct planes of 48 channels (directMaskedMaxK), large-weight
	// pointwise layers of 144 and 256 pixels (pointwiseMinPixels), and
	// weight gradients wasting a third of the phase buffer with 16
	// output channels and 2/9 with 128 (weightPaddedFewKMax*).
	bounds := []ConvParams{
		conv2dParams(48, 28, 48, 3, 1, 1),
		conv2dParams(640, 12, 640, 1, 1, 1), conv2dParams(640, 16, 640, 1, 1, 1),
		conv2dParams(16, 4, 16, 3, 1, 1), conv2dParams(128, 7, 128, 3, 1, 1),
	}
	for i := range bounds {
		bounds[i].N = 32
	}
	return slices.Concat(convCases, dedupConvs(models), bounds)
}

// planLines is the plan of every pass of every case of planCases on
// path, a line each.
func planLines(path Path) []string {
	var lines []string
	for _, p := range planCases() {
		for _, pass := range []convPass{passForward, passBackwardData, passBackwardWeight} {
			for _, w := range planWorkers {
				pl := planConv(&p, pass, path, w)
				lines = append(lines, fmt.Sprintf("%s %s w%d: %s", convName(p), pass, w, &pl))
			}
		}
	}
	return lines
}

// readPlans splits the plans file into its sections by path.
func readPlans(t *testing.T) (map[Path][]string, []Path) {
	data, err := os.ReadFile(plansFile)
	if err != nil && !(*updatePlans && os.IsNotExist(err)) {
		t.Fatal(err)
	}
	sections := map[Path][]string{}
	var order []Path
	var cur Path
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "== "):
			cur = Path(strings.TrimPrefix(line, "== "))
			order = append(order, cur)
			sections[cur] = []string{}
		case line == "" || strings.HasPrefix(line, "#"):
		case cur != "":
			sections[cur] = append(sections[cur], line)
		}
	}
	return sections, order
}

// TestConvPlans pins the route and parameters of every pass of every
// case of the conv test table and every model layer on every path this machine runs (arm64's
// under qemu-aarch64), at one and four workers: a changed threshold or
// route shows here, and in the diff of testdata/conv_plans.txt once the
// change is meant (go test ./kernels -run TestConvPlans -update; for
// neon, GOARCH=arm64 go test -exec qemu-aarch64 ... -update).
func TestConvPlans(t *testing.T) {
	sections, order := readPlans(t)
	if *updatePlans {
		for _, p := range Available() {
			if _, ok := sections[p]; !ok {
				order = append(order, p)
			}
			sections[p] = planLines(p)
		}
		// Keep the file in path order, whatever wrote it last.
		rank := map[Path]int{Generic: 0, AVX2: 1, AVX512: 2, NEON: 3}
		slices.SortStableFunc(order, func(a, b Path) int { return rank[a] - rank[b] })
		var b bytes.Buffer
		b.WriteString("# The plan of every pass of convCases (conv_test.go) and of the models'\n")
		b.WriteString("# layers at batch 32 on each kernel path, at 1 and 4 workers.\n")
		b.WriteString("# Written by TestConvPlans -update.\n")
		for _, p := range order {
			fmt.Fprintf(&b, "\n== %s\n", p)
			for _, l := range sections[p] {
				b.WriteString(l + "\n")
			}
		}
		if err := os.WriteFile(plansFile, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, p := range Available() {
		want, ok := sections[p]
		if !ok {
			t.Errorf("%s: no plans in %s (run with -update)", p, plansFile)
			continue
		}
		got := planLines(p)
		var diffs []string
		for i := range max(len(got), len(want)) {
			g, w := "(none)", "(none)"
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				diffs = append(diffs, fmt.Sprintf("  got  %s\n  want %s", g, w))
			}
		}
		if len(diffs) > 0 {
			t.Errorf("%s: %d of %d plans differ from %s (first %d below); if the change is meant, rerun with -update and commit the diff:\n%s",
				p, len(diffs), len(got), plansFile, min(len(diffs), 10), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
		}
	}
}

// TestConvPlanRoutes checks what the plans promise beyond the pinned
// lines: every pass of every case gets a route that pass can run, the
// direct routes only where the path has the kernels, and the trace
// tells each distinct pass once.
func TestConvPlanRoutes(t *testing.T) {
	forward := []convRoute{routeDirect, routeDirectMasked, routePadded, routePointwise, routeGathered, routeIm2col}
	allowed := map[convPass][]convRoute{
		passForward:        append([]convRoute{routeDepthwise, routeStrided1x1}, forward...),
		passBackwardData:   {routeDepthwise, routeFlipped, routeStrided1x1, routePadded, routeGathered, routeCol2im},
		passBackwardWeight: {routeDepthwise, routePadded, routePointwise, routeIm2col},
	}
	for _, path := range Available() {
		k := kernelsOf(path)
		for _, p := range convCases {
			for pass, routes := range allowed {
				for _, w := range planWorkers {
					pl := planConv(&p, pass, path, w)
					if !slices.Contains(routes, pl.route) {
						t.Errorf("%s %s %s: route %v", path, convName(p), pass, pl.route)
					}
					gemmSplit := pass != passBackwardWeight && pl.route != routeDepthwise
					if pl.tasks < 1 || gemmSplit && pl.parallelGEMM != (pl.tasks < w) {
						t.Errorf("%s %s %s w%d: %d tasks, GEMMs on the pool %v", path, convName(p), pass, w, pl.tasks, pl.parallelGEMM)
					}
					if g := pl.gemm.route; (g == routeDirect || g == routeDirectMasked) && !directAny(&k) {
						t.Errorf("%s %s %s: %v without direct kernels", path, convName(p), pass, g)
					}
				}
			}
		}
	}

	var b bytes.Buffer
	TraceConv(&b)
	defer TraceConv(nil)
	p := convCases[0]
	r := make([]float32, max(p.xLen(), p.yLen(), p.wLen()))
	x, w, y := r[:p.xLen()], r[:p.wLen()], make([]float32, p.yLen())
	for range 3 {
		Conv2dForward(p, x, w, nil, y)
		Conv2dBackwardWeight(p, x, y, make([]float32, p.wLen()))
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " forward on ") || !strings.Contains(lines[1], " backward-weight on ") {
		t.Fatalf("trace of three forward and weight passes:\n%s", b.String())
	}
	pl := planConv(&p, passForward, Active(), parWorkers())
	if !strings.HasSuffix(lines[0], ": "+pl.String()) {
		t.Errorf("trace line %q does not end in the plan %q", lines[0], pl.String())
	}
}

// directAny reports whether k has direct kernels of either kind.
func directAny(k *pathKernels) bool {
	whole, _ := directKernels(k)
	return whole
}
