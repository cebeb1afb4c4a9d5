package main

// The labelled data set (docs/DESIGN.md, "Command line"): opened, matched
// against the model (channels, resolution, classes) and, for a folder of
// photographs, decoded whole before any long work, so that a broken file
// stops the run in seconds rather than at its first evaluation hours in.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dghcore/dghcore/assets"
	"github.com/dghcore/dghcore/dataset"
)

// badListed is how many bad files a refusal lists before counting the rest.
const badListed = 5

// openData opens the labelled set: the embedded Fashion-MNIST test set for
// the embedded model, else --data_path, an ImageNet-style folder or a
// folder of IDX files, and checks that it fits the model.
func (a *app) openData(ctx context.Context) error {
	o := a.o
	var err error
	switch {
	case o.dataPath == "" && (o.embedded() || a.embeddedExport):
		if a.size != 28 {
			return usageErrorf("--img_size %d: the embedded Fashion-MNIST test set holds 28x28 images, which are not resized; give --data_path for another size", a.size)
		}
		a.data, err = dataset.ReadIDX(bytes.NewReader(assets.FashionMNISTTestImages()),
			bytes.NewReader(assets.FashionMNISTTestLabels()), a.norm, assets.FashionMNISTClasses)
		if err != nil {
			return fmt.Errorf("embedded test set: %w", err)
		}
		a.dataDesc = "the embedded Fashion-MNIST test set"
	case o.dataPath == "":
		return usageErrorf("--data_path is required for %s: an ImageNet-style folder or a folder of IDX files", a.model.Name)
	default:
		if err := a.openDataPath(ctx); err != nil {
			return err
		}
	}
	if a.data.Len() == 0 {
		return usageErrorf("--data_path %s: no images", o.dataPath)
	}
	if shape := a.data.SampleShape(); shape[0] != a.channels {
		return usageErrorf("--data_path %s: %d-channel images for a %d-channel model", a.dataDesc, shape[0], a.channels)
	}
	return a.checkClasses()
}

// openDataPath opens --data_path.
func (a *app) openDataPath(ctx context.Context) error {
	o := a.o
	st, err := os.Stat(o.dataPath)
	if err != nil {
		return usageErrorf("--data_path %s: %v", o.dataPath, errorsUnwrapPath(err))
	}
	if !st.IsDir() {
		return usageErrorf("--data_path %s: not a folder", o.dataPath)
	}
	// IDX files hold grey images, class folders are read as RGB.
	idx := isIDXDir(o.dataPath)
	if idx && a.channels != 1 || !idx && a.channels != 3 {
		kind := "an ImageNet-style folder of 3"
		if idx {
			kind = "IDX files of 1"
		}
		return usageErrorf("--data_path %s: %s-channel images for a %d-channel model", o.dataPath, kind, a.channels)
	}
	a.dataDesc = o.dataPath
	if idx {
		// The header says the size before a byte of pixels is read.
		_, h, w, err := dataset.StatIDXDir(o.dataPath)
		if err != nil {
			return usageErrorf("--data_path %s: %v", o.dataPath, err)
		}
		if h != a.size || w != a.size {
			return usageErrorf("--data_path %s: IDX images of %dx%d for a model run at %dx%d; IDX images are not resized, so give --img_size %d if the model takes them",
				o.dataPath, h, w, a.size, a.size, h)
		}
		if a.data, err = dataset.OpenIDXDir(o.dataPath, a.norm, nil); err != nil {
			return usageErrorf("--data_path %s: %v", o.dataPath, err)
		}
		return nil
	}
	// The evaluation transform at any resolution: the shorter side to
	// S*256/224, then the centre S x S.
	f, err := dataset.OpenFolderContext(ctx, o.dataPath, dataset.FolderOptions{
		Resize: (a.size*256 + 112) / 224, Crop: a.size, Norm: a.norm,
	})
	if err != nil {
		if ctx.Err() != nil {
			return a.interrupted(err, "the scan of --data_path", "", false)
		}
		return usageErrorf("--data_path %s: %v", o.dataPath, err)
	}
	a.data = f
	return nil
}

// checkClasses refuses labels the model's outputs cannot mean: a class
// folder count other than the model's classes, or an IDX label beyond
// them, unless --check_class_count=false.
func (a *app) checkClasses() error {
	if !a.o.checkClasses {
		return nil
	}
	classes := a.data.Classes()
	if idx, ok := a.data.(*dataset.IDX); ok {
		// IDX files name no classes: only labels the model cannot output
		// are a mismatch.
		for _, y := range idx.Labels() {
			if y >= a.classes {
				return usageErrorf("--data_path %s: label %d, but %s has %s; pass --check_class_count=false to evaluate anyway",
					a.dataDesc, y, a.model.Name, plural(a.classes, "output", "outputs"))
			}
		}
		return nil
	}
	if len(classes) != a.classes {
		return usageErrorf("--data_path %s: %s, but %s has %s, so labels would not match outputs; pass --check_class_count=false to evaluate anyway",
			a.dataDesc, plural(len(classes), "class", "classes"), a.model.Name, plural(a.classes, "output", "outputs"))
	}
	return nil
}

// checkData decodes every image of a folder before the long work: bad
// files are listed and refused, or with --skip_bad_images left out. Then
// it cuts the evaluation set and describes the data.
func (a *app) checkData(ctx context.Context) error {
	o := a.o
	a.dataReport = &dataReport{Path: a.dataDesc, Classes: len(a.data.Classes())}
	if f, ok := a.data.(*dataset.Folder); ok {
		a.dataReport.LinksSkipped = f.Revisits()
		a.phase = "the check of --data_path"
		n := f.Len()
		start := time.Now()
		defer func() {
			if a.state != nil { // eval keeps no state
				a.state.record.CheckSeconds += time.Since(start).Seconds()
			}
		}()
		bad, err := f.Check(ctx, func(done int) {
			a.position = fmt.Sprintf("(%d of %d images checked)", done, n)
			a.rep.step(phaseCheck, float64(done)/float64(n), 0, done == n, "checking %s: %d/%d images decoded", o.dataPath, done, n)
		})
		if err != nil {
			return a.interrupted(err, a.phase, a.position, false)
		}
		if len(bad) > 0 && !o.skipBad {
			return a.refuseBad(bad, n)
		}
		if len(bad) > 0 {
			idx := make([]int, len(bad))
			for i, b := range bad {
				idx[i] = b.Index
			}
			a.data = f.Without(idx)
			a.dataReport.SkippedBad = len(bad)
			verb := "do"
			if len(bad) == 1 {
				verb = "does"
			}
			fmt.Fprintf(a.out, "Data: skipping %s that %s not decode (--skip_bad_images), the first %s: %v\n",
				plural(len(bad), "image", "images"), verb, relPath(o.dataPath, bad[0].Path), reason(bad[0]))
		}
	}
	a.eval = a.data
	n := a.data.Len()
	limit := o.evalImages
	if o.debug && (limit == 0 || limit > 1000) {
		limit = 1000
	}
	if limit > 0 && limit < n {
		idx := make([]int, limit)
		for i := range idx {
			idx[i] = i
		}
		var err error
		if a.eval, err = dataset.Subset(a.data, idx); err != nil {
			return err
		}
	}
	a.dataReport.Images, a.dataReport.Evaluated = n, a.eval.Len()
	a.dataReport.SampleShape = a.data.SampleShape()
	evaluated := ""
	if a.command != cmdGenerate {
		evaluated = fmt.Sprintf(", evaluating on %d", a.eval.Len())
	}
	shape := a.data.SampleShape()
	fmt.Fprintf(a.out, "Data: %s, %s of %dx%dx%d in %s%s\n", a.dataDesc, plural(n, "image", "images"),
		shape[0], shape[1], shape[2], plural(len(a.data.Classes()), "class", "classes"), evaluated)
	return nil
}

// refuseBad lists the first bad files on the error stream and refuses
// the data set in one line.
func (a *app) refuseBad(bad []dataset.BadImage, total int) error {
	for i, b := range bad {
		if i == badListed {
			fmt.Fprintf(a.errOut, "  ... and %d more\n", len(bad)-badListed)
			break
		}
		fmt.Fprintf(a.errOut, "  %s: %v\n", relPath(a.o.dataPath, b.Path), reason(b))
	}
	return usageErrorf("--data_path %s: %d of %d images do not decode (listed above); fix or remove them, or leave them out with --skip_bad_images",
		a.o.dataPath, len(bad), total)
}

// reason is a bad image's error without the path it repeats.
func reason(b dataset.BadImage) string {
	msg := b.Err.Error()
	msg = strings.TrimPrefix(msg, "decode "+b.Path+": ")
	return msg
}

// relPath shows a file under the data folder relative to it.
func relPath(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// isIDXDir reports whether dir holds an MNIST-style test split.
func isIDXDir(dir string) bool {
	for _, name := range []string{"t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil && st.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// evalSetKey identifies the evaluation set, so that a saved float
// accuracy is only reused for the same images.
func (a *app) evalSetKey() string {
	r := a.dataReport
	return fmt.Sprintf("%s: %d images, %d evaluated, %d left out", r.Path, r.Images, r.Evaluated, r.SkippedBad)
}
