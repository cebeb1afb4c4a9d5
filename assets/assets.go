// Package assets holds the embedded default of docs/DESIGN.md, "Command line": a resnet20
// (docs/DESIGN.md, "Models and checkpoints") trained on Fashion-MNIST, and the Fashion-MNIST test
// set it is evaluated on, both compiled into the binary so `dghcore` with
// no arguments needs no files.
//
// The checkpoint is written by tools/fmnist/train.py (a zip-format PyTorch
// state_dict, 1 input channel, 10 classes, 28x28 inputs normalised with
// FashionMNISTMean and FashionMNISTStd). The test set is the two gzip IDX
// files exactly as Zalando ships them (MIT licence, see
// fashion-mnist/LICENSE).
package assets

import (
	_ "embed" // for the go:embed directives
	"fmt"
	"strings"

	"github.com/dghcore/dghcore/dataset"
)

// ResNet20FashionMNISTModel is the zoo name of the embedded model.
const ResNet20FashionMNISTModel = "resnet20"

// Normalisation of the Fashion-MNIST pixels: the mean and standard
// deviation of the 60000 training images in [0, 1] (0.286041, 0.353024),
// rounded as the training script uses them.
const (
	FashionMNISTMean = 0.2860
	FashionMNISTStd  = 0.3530
)

// FashionMNISTClasses names the ten labels in label order.
var FashionMNISTClasses = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

var (
	//go:embed resnet20_fmnist.pth
	resnet20Checkpoint string
	//go:embed fashion-mnist/t10k-images-idx3-ubyte.gz
	testImages string
	//go:embed fashion-mnist/t10k-labels-idx1-ubyte.gz
	testLabels string
)

// ResNet20Checkpoint returns a copy of the embedded checkpoint file (for
// torchload.LoadBytes).
func ResNet20Checkpoint() []byte { return []byte(resnet20Checkpoint) }

// FashionMNISTTestImages returns a copy of the gzip IDX image file.
func FashionMNISTTestImages() []byte { return []byte(testImages) }

// FashionMNISTTestLabels returns a copy of the gzip IDX label file.
func FashionMNISTTestLabels() []byte { return []byte(testLabels) }

// FashionMNISTNormalization is the model's input normalisation.
func FashionMNISTNormalization() dataset.Normalization {
	return dataset.Normalization{Mean: []float32{FashionMNISTMean}, Std: []float32{FashionMNISTStd}}
}

// FashionMNISTTest decodes the embedded test set: 10000 images, 1 x 28 x
// 28, normalised for the embedded model, with named classes.
func FashionMNISTTest() (*dataset.IDX, error) {
	d, err := dataset.ReadIDX(strings.NewReader(testImages), strings.NewReader(testLabels),
		FashionMNISTNormalization(), FashionMNISTClasses)
	if err != nil {
		return nil, fmt.Errorf("embedded Fashion-MNIST test set: %w", err)
	}
	return d, nil
}
