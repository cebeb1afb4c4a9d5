package dataset

// ImageNet-style folders (docs/DESIGN.md, "Command line"): one sub-folder per
// class, the sorted folder names are the labels (torchvision's
// ImageFolder), and every image is preprocessed like torchvision's
// evaluation transform Resize(256), CenterCrop(224), ToTensor(),
// Normalize(mean, std).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/dghcore/dghcore/tensor"
)

// FolderOptions configures a Folder. Zero values mean the ImageNet
// evaluation defaults.
type FolderOptions struct {
	// Resize is the length the shorter side is resized to (256).
	Resize int
	// Crop is the side of the centre square kept after resizing (224).
	Crop int
	// Norm is the per-channel normalisation (ImageNetNormalization).
	Norm Normalization
	// Workers decode images in parallel (GOMAXPROCS).
	Workers int
}

func (o FolderOptions) withDefaults() FolderOptions {
	if o.Resize == 0 {
		o.Resize = 256
	}
	if o.Crop == 0 {
		o.Crop = 224
	}
	if o.Norm.Mean == nil && o.Norm.Std == nil {
		o.Norm = ImageNetNormalization
	}
	if o.Workers == 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// Folder is a class-per-sub-folder image set, decoded on Load.
type Folder struct {
	root    string
	files   []string
	labels  []int
	classes []string
	opt     FolderOptions
	lut     [][256]float32
}

// folderSubdirs are the places under a data path where the validation
// images of an ImageNet download usually sit, tried before the path itself
// so `--data_path /imagenet` works for both layouts.
var folderSubdirs = []string{"ILSVRC2012_img_val", "val"}

// imageExtensions are the files a class folder's images may have; other
// files (a README, a label list) are ignored like torchvision does.
var imageExtensions = []string{".jpg", ".jpeg", ".png"}

// unsupportedExtensions are image types torchvision would load but the
// standard library cannot decode; they are an error rather than silently
// skipped, which would shift the evaluation set.
var unsupportedExtensions = []string{".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}

// OpenFolder lists the images under path (or under its ILSVRC2012_img_val
// or val sub-folder, when there is one with class folders). Class names are
// the sorted sub-folder names; images are found recursively in each class
// folder in sorted order.
func OpenFolder(path string, opt FolderOptions) (*Folder, error) {
	opt = opt.withDefaults()
	if err := opt.Norm.check(3); err != nil {
		return nil, fmt.Errorf("folder %s: %w", path, err)
	}
	if opt.Resize < 1 || opt.Crop < 1 || opt.Crop > opt.Resize {
		return nil, fmt.Errorf("folder %s: resize %d, crop %d: want 1 <= crop <= resize", path, opt.Resize, opt.Crop)
	}
	if opt.Workers < 1 {
		return nil, fmt.Errorf("folder %s: %d workers", path, opt.Workers)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("folder %s: not a directory", path)
	}
	var firstErr error
	for _, sub := range append(slices.Clone(folderSubdirs), "") {
		root := filepath.Join(path, sub)
		if st, err := os.Stat(root); err != nil || !st.IsDir() {
			continue
		}
		f, err := scanFolder(root)
		if err == nil {
			f.opt, f.lut = opt, opt.Norm.table()
			return f, nil
		}
		if firstErr == nil || sub == "" {
			firstErr = err
		}
	}
	return nil, firstErr
}

// scanFolder lists the classes and images of root.
func scanFolder(root string) (*Folder, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("folder: %w", err)
	}
	f := &Folder{root: root}
	for _, e := range entries {
		if isDir(root, e) {
			f.classes = append(f.classes, e.Name())
		}
	}
	if len(f.classes) == 0 {
		return nil, fmt.Errorf("folder %s: no class sub-folders", root)
	}
	sort.Strings(f.classes)
	for label, class := range f.classes {
		files, err := classImages(filepath.Join(root, class))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("folder %s: class %q has no %s images", root, class, strings.Join(imageExtensions, "/"))
		}
		f.files = append(f.files, files...)
		for range files {
			f.labels = append(f.labels, label)
		}
	}
	return f, nil
}

// isDir reports whether a directory entry is a folder, following symlinks
// as ImageFolder does.
func isDir(parent string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	st, err := os.Stat(filepath.Join(parent, e.Name()))
	return err == nil && st.IsDir()
}

// classImages lists the image files under dir, recursively, ordered like
// torchvision: by folder path, then by file name.
func classImages(dir string) ([]string, error) {
	byDir := map[string][]string{}
	var walk func(d string) error
	walk = func(d string) error {
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("folder: %w", err)
		}
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			if isDir(d, e) {
				if err := walk(p); err != nil {
					return err
				}
				continue
			}
			ext := strings.ToLower(filepath.Ext(e.Name()))
			switch {
			case slices.Contains(imageExtensions, ext):
				byDir[d] = append(byDir[d], e.Name())
			case slices.Contains(unsupportedExtensions, ext):
				return fmt.Errorf("folder: %s: %s images are not supported (JPEG and PNG are)", p, ext)
			}
		}
		return nil
	}
	if err := walk(dir); err != nil {
		return nil, err
	}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	var files []string
	for _, d := range dirs {
		names := byDir[d]
		sort.Strings(names)
		for _, n := range names {
			files = append(files, filepath.Join(d, n))
		}
	}
	return files, nil
}

// Root is the folder the classes were found in.
func (f *Folder) Root() string { return f.root }

// Len is the number of images.
func (f *Folder) Len() int { return len(f.files) }

// SampleShape is [3, Crop, Crop].
func (f *Folder) SampleShape() [3]int { return [3]int{3, f.opt.Crop, f.opt.Crop} }

// Classes are the sorted class folder names.
func (f *Folder) Classes() []string { return f.classes }

// Path is the file of sample i.
func (f *Folder) Path(i int) string { return f.files[i] }

// Load decodes and preprocesses the images at indices in parallel.
func (f *Folder) Load(indices []int) (*tensor.Tensor, []int, error) {
	labels := make([]int, len(indices))
	for k, i := range indices {
		if i < 0 || i >= len(f.files) {
			return nil, nil, fmt.Errorf("folder %s: index %d outside [0, %d)", f.root, i, len(f.files))
		}
		labels[k] = f.labels[i]
	}
	c := f.opt.Crop
	out := tensor.New(len(indices), 3, c, c)
	per := 3 * c * c
	next := make(chan int)
	errs := make([]error, len(indices))
	var wg sync.WaitGroup
	for range min(f.opt.Workers, len(indices)) {
		wg.Go(func() {
			for k := range next {
				errs[k] = f.preprocess(f.files[indices[k]], out.Data[k*per:(k+1)*per])
			}
		})
	}
	for k := range indices {
		next <- k
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return out, labels, nil
}

// preprocess decodes one file into dst (3 x Crop x Crop).
func (f *Folder) preprocess(path string, dst []float32) error {
	img, err := decodeFile(path)
	if err != nil {
		return err
	}
	if img.w == 0 || img.h == 0 {
		return fmt.Errorf("decode %s: empty image", path)
	}
	return preprocessRGB(img, f.opt.Resize, f.opt.Crop, f.lut, dst)
}

// preprocessRGB is torchvision's Resize(resize), CenterCrop(crop),
// ToTensor(), Normalize(...) on an RGB image, writing CHW into dst.
func preprocessRGB(img rgbImage, resize, crop int, lut [][256]float32, dst []float32) error {
	w, h := shorterSideSize(img.w, img.h, resize)
	if w < crop || h < crop {
		return fmt.Errorf("image %dx%d resized to %dx%d is smaller than the %d crop", img.w, img.h, w, h, crop)
	}
	img = resizeBilinear(img, w, h)
	top, left := centerCropOffset(h, crop), centerCropOffset(w, crop)
	plane := crop * crop
	for y := range crop {
		row := img.pix[3*((top+y)*img.w+left):]
		for x := range crop {
			o := y*crop + x
			dst[o] = lut[0][row[3*x]]
			dst[plane+o] = lut[1][row[3*x+1]]
			dst[2*plane+o] = lut[2][row[3*x+2]]
		}
	}
	return nil
}
