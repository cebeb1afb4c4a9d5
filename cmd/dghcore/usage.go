package main

// --help and --version (docs/DESIGN.md, "Command line").

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"
)

// printUsage writes --help: the commands, then the flags by group, each
// usage wrapped to width columns beside the flag names.
func printUsage(w io.Writer, fs *pflag.FlagSet, width int) {
	preset := make([]string, len(quickPreset))
	for i, p := range quickPreset {
		preset[i] = "--" + p.flag + " " + p.value
	}
	fmt.Fprint(w, `dghcore: zero-shot 4-bit quantization with DGH data generation and BRECQ.

usage:
  dghcore [flags]             generate calibration data, quantize, evaluate
  dghcore --compare [flags]   the same with noise, DGH and real data, one table
  dghcore generate [flags]    only generate images (--output X.npy, --png DIR)
  dghcore quantize [flags]    quantize with given images (--calib X.npy)
  dghcore infer [flags]       the model's logits for --input X.npy
  dghcore eval [flags]        the model's accuracy on --data_path
  dghcore export [flags]      the float model, BN folded, to --output X.onnx

infer and eval also run an exported model: --model FILE.onnx.

`)
	fmt.Fprint(w, wrap("Without --model and --checkpoint it runs the embedded Fashion-MNIST resnet20 with a quick preset ("+
		strings.Join(preset, ", ")+"); flags given explicitly override it.", width, 0))
	fmt.Fprint(w, wrap("Long flags take one or two dashes; '-' and '_' are alike; a boolean is switched off with '=', as --act_quant=false.", width, 0))
	fmt.Fprint(w, wrap("Long phases save their state under --state_dir every --save_every and on Ctrl-C; the same command with --resume continues, --fresh starts over.", width, 0))
	fmt.Fprint(w, "Exit status: 0 done, 1 failed, 2 input refused, 130 interrupted.\n")
	for _, g := range groupOrder {
		fmt.Fprintf(w, "\n%s:\n", g)
		fs.VisitAll(func(f *pflag.Flag) {
			if a := f.Annotations["group"]; len(a) == 1 && a[0] == g {
				fmt.Fprint(w, flagUsage(f, width))
			}
		})
	}
}

// usageColumn is where the usage text of a flag starts; a flag whose name
// reaches it gets its text on the next line.
const usageColumn = 34

// flagUsage formats one flag: "  -m, --model_name string", then the usage
// and its default, wrapped at width.
func flagUsage(f *pflag.Flag, width int) string {
	name := "      --" + f.Name
	if f.Shorthand != "" {
		name = "  -" + f.Shorthand + ", --" + f.Name
	}
	varname, usage := pflag.UnquoteUsage(f)
	if varname != "" && f.Value.Type() != "bool" {
		name += " " + varname
	}
	switch f.DefValue {
	case "", "0", "false", "0s", "[]":
	default:
		usage += fmt.Sprintf(" (default %s)", f.DefValue)
	}
	var b strings.Builder
	b.WriteString(name)
	if len(name)+2 > usageColumn {
		b.WriteString("\n" + strings.Repeat(" ", usageColumn))
	} else {
		b.WriteString(strings.Repeat(" ", usageColumn-len(name)))
	}
	b.WriteString(wrap(usage, width, usageColumn))
	return b.String()
}

// wrap breaks text into lines of at most width columns, every line after
// the first indented by indent (the first is assumed to start there).
func wrap(text string, width, indent int) string {
	var b strings.Builder
	line := 0
	for _, word := range strings.Fields(text) {
		if line > 0 && indent+line+1+len(word) > width {
			b.WriteString("\n" + strings.Repeat(" ", indent))
			line = 0
		}
		if line > 0 {
			b.WriteString(" ")
			line++
		}
		b.WriteString(word)
		line += len(word)
	}
	b.WriteString("\n")
	return b.String()
}

// helpWidth is the width --help wraps to: the terminal's when stdout is
// one, within 60..120 columns.
func helpWidth(w io.Writer) int {
	return min(max(outputColumns(w), 60), 120)
}

// version is set at link time (-ldflags "-X main.version=v1.2.0");
// otherwise versionString reads the module version and the VCS revision
// Go stamps into the binary.
var version = ""

// versionString describes this binary: version, revision, Go, platform.
func versionString() string {
	return fmt.Sprintf("dghcore %s (%s %s/%s)", moduleVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// moduleVersion is dghcore's version and VCS revision, as far as the
// build recorded them; exports carry it in their metadata.
func moduleVersion() string {
	v, rev, modified := version, "", false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev
		if modified {
			v += "+modified"
		}
	}
	return v
}

// outputColumns is the width of the terminal w writes to, else $COLUMNS,
// else 80.
func outputColumns(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if c := terminalColumns(f); c > 0 {
			return c
		}
	}
	return envColumns()
}
