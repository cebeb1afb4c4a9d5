"""Write the checkpoint fixtures of layers/torchload (docs/DESIGN.md, "Models and checkpoints") with PyTorch.

Run from the repository root: /usr/bin/python3 tools/torchref/checkpoints.py

Every good checkpoint holds the same small state dict, saved by torch.save in
both serialisations (zip and legacy pickle, pickle protocols 2 and 4) and under
every wrapper the loader accepts, also inside the checkpoints that training
scripts write, with optimizer state, numpy scalars and arrays and an
argparse.Namespace beside it. The expected float32 value of each tensor is
written as .npy (what `tensor.float().contiguous()` gives), and manifest.json
tells the Go tests which files hold what. The bad fixtures are files a loader
must refuse with an error: pickles that call os.system or eval (also hidden in
the metadata next to a good state dict), a whole pickled nn.Module,
TorchScript, a zip that is not a checkpoint, and so on.
"""
import argparse
import io
import json
import os
import pickle
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np
import torch

OUT = os.path.join("layers", "torchload", "testdata")


def state_dict():
    """A tiny state dict covering every storage case the loader handles."""
    g = torch.Generator().manual_seed(7)
    sd = OrderedDict()
    sd["conv.weight"] = torch.randn(3, 2, 2, 2, generator=g)  # float32
    sd["conv.bias"] = torch.randn(3, generator=g, dtype=torch.float64) / 3
    # float16 with a subnormal, -0, the largest finite value, inf and NaN.
    sd["bn.weight"] = torch.tensor(
        [1.5, -2.25, 6e-6, -0.0, 65504.0, float("inf"), float("nan")],
        dtype=torch.float16)
    sd["bn.bias"] = (torch.randn(7, generator=g) * 100).to(torch.bfloat16)
    sd["bn.running_mean"] = torch.randn(7, generator=g)
    sd["bn.running_var"] = torch.rand(7, generator=g) + 0.5
    sd["bn.num_batches_tracked"] = torch.tensor(12345, dtype=torch.int64)
    # Views of one storage: a permutation (strides 1, 12, 4), a strided
    # slice and a contiguous block, both at a storage offset. torch.save
    # stores the whole base storage once.
    base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 8 - 1
    sd["view.permuted"] = base.permute(2, 0, 1)
    sd["view.sliced"] = base[1, 1:, ::2]
    sd["view.row"] = base[1:2]  # contiguous, at storage offset 12
    sd["fc.weight"] = torch.nn.Parameter(torch.randn(2, 5, generator=g))
    sd["fc.scale"] = torch.tensor(0.125)  # zero-dimensional
    sd["fc.empty"] = torch.zeros(0, 3)
    return sd


def save(obj, name, zip_format=True, protocol=2, pickle_module=pickle):
    torch.save(obj, os.path.join(OUT, name), pickle_module=pickle_module,
               _use_new_zipfile_serialization=zip_format,
               pickle_protocol=protocol)


class StorageDtypes(pickle.Unpickler):
    """Unpickles a zip checkpoint's data.pkl, noting each storage's dtype."""

    def __init__(self, f):
        super().__init__(f)
        self.dtypes = {}

    def persistent_load(self, pid):
        _, cls, key, _, numel = pid
        self.dtypes[key] = cls.dtype
        return cls(numel)


def big_endian_copy(src, dst):
    """Rewrites a zip checkpoint as a big-endian machine's torch >= 2.1
    writes it: storage records in big-endian order plus a byteorder record."""
    with zipfile.ZipFile(src) as z:
        names = z.namelist()
        prefix = names[0].split("/")[0] + "/"
        u = StorageDtypes(io.BytesIO(z.read(prefix + "data.pkl")))
        u.load()
        records = {n: z.read(n) for n in names}
    with zipfile.ZipFile(dst, "w") as z:
        for n, b in records.items():
            key = n[len(prefix + "data/"):]
            if n.startswith(prefix + "data/") and key in u.dtypes:
                itemsize = torch.empty(0, dtype=u.dtypes[key]).element_size()
                a = np.frombuffer(b, dtype=np.dtype("u%d" % itemsize))
                b = a.byteswap().tobytes()
            z.writestr(n, b)
        z.writestr(prefix + "byteorder", "big")


def imagenet_checkpoint(sd):
    """What the ImageNet example of pytorch/examples (main.py) saves: the
    DataParallel state dict, accuracy as a tensor, optimizer and scheduler
    state. The optimizer drives a tiny Linear so the file stays small."""
    torch.manual_seed(3)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9,
                          weight_decay=1e-4)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, 30)
    return {"epoch": 90, "arch": "tiny",
            "state_dict": OrderedDict(("module." + k, v) for k, v in sd.items()),
            "best_acc1": torch.tensor(71.5), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict()}


def numpy_checkpoint(sd):
    """The torchvision reference scripts' layout ({'model', 'optimizer',
    'lr_scheduler', 'epoch', 'args'}) with the accuracy a numpy float64 and
    the command line an argparse.Namespace holding a torch.device, a
    torch.Size, a numpy array and an OrderedDict."""
    ckpt = imagenet_checkpoint(sd)
    args = argparse.Namespace(
        model="tiny", lr=0.1, epochs=90, data_path="/imagenet",
        device=torch.device("cpu"), input_size=torch.Size([3, 8, 8]),
        mean=np.array([0.485, 0.456, 0.406], dtype=np.float32),
        milestones=OrderedDict([("warmup", 5), ("decay", 30)]))
    return {"model": sd, "optimizer": ckpt["optimizer"],
            "lr_scheduler": ckpt["scheduler"], "epoch": 90, "args": args,
            "best_acc1": np.float64(71.5)}


def numpy2_pickle_module():
    """A pickle module for torch.save whose Pickler writes numpy scalars and
    arrays as numpy >= 2 does, through numpy._core.multiarray (the numpy
    here is 1.x, which spells it numpy.core.multiarray)."""
    core = types.ModuleType("numpy._core")
    multiarray = types.ModuleType("numpy._core.multiarray")
    sys.modules.setdefault("numpy._core", core)
    sys.modules.setdefault("numpy._core.multiarray", multiarray)
    aliases = {}
    for name in ("scalar", "_reconstruct"):
        def alias(*args, _fn=getattr(np.core.multiarray, name)):
            return _fn(*args)
        alias.__module__ = "numpy._core.multiarray"
        alias.__name__ = alias.__qualname__ = name
        setattr(multiarray, name, alias)
        aliases[getattr(np.core.multiarray, name)] = alias

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, (np.generic, np.ndarray)):
                fn, *rest = obj.__reduce__()
                return (aliases[fn], *rest)
            return NotImplemented

    module = types.ModuleType("numpy2_pickle")
    module.Pickler, module.dump = Pickler, pickle.dump
    return module


class Call:
    """Pickles as a call of fn(*args): what a malicious checkpoint does."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def main():
    # Start clean, but keep testdata/fuzz: the Go fuzzer's regressions live there.
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if os.path.isfile(os.path.join(OUT, name)):
            os.remove(os.path.join(OUT, name))
    sd = state_dict()

    expected, skipped = OrderedDict(), []
    for i, (key, t) in enumerate(sd.items()):
        if not t.is_floating_point():
            skipped.append({"key": key, "dtype": str(t.dtype).replace("torch.", ""),
                            "shape": list(t.shape)})
            continue
        name = "want_%02d.npy" % i
        np.save(os.path.join(OUT, name),
                t.detach().float().contiguous().numpy().astype(np.float32))
        expected[key] = name

    prefixed = OrderedDict(("module." + k, v) for k, v in sd.items())
    wrappers = {
        "bare": sd,
        "model": {"model": sd},
        "state_dict": {"state_dict": sd, "epoch": 90, "arch": "tiny",
                       "best_acc1": torch.tensor(71.5)},
        "module": prefixed,
        "model_module": {"model": prefixed},
    }
    good = []
    for fmt, zip_format in (("zip", True), ("legacy", False)):
        for wrap, obj in wrappers.items():
            name = "%s_%s.pt" % (fmt, wrap)
            save(obj, name, zip_format)
            good.append(name)
        name = "%s_protocol4.pt" % fmt
        save(sd, name, zip_format, protocol=4)
        good.append(name)
    big_endian_copy(os.path.join(OUT, "zip_bare.pt"),
                    os.path.join(OUT, "zip_big_endian.pt"))
    good.append("zip_big_endian.pt")
    training = [
        ("zip_imagenet.pt", imagenet_checkpoint(sd), True, 2, pickle),
        ("legacy_imagenet.pt", imagenet_checkpoint(sd), False, 2, pickle),
        ("zip_numpy_args.pt", numpy_checkpoint(sd), True, 2, pickle),
        ("legacy_numpy_args.pt", numpy_checkpoint(sd), False, 2, pickle),
        ("zip_numpy_args_protocol4.pt", numpy_checkpoint(sd), True, 4, pickle),
        ("legacy_numpy2_args.pt", numpy_checkpoint(sd), False, 2,
         numpy2_pickle_module()),
    ]
    for name, obj, zip_format, protocol, module in training:
        save(obj, name, zip_format, protocol, module)
        good.append(name)

    bad = {}

    def bad_file(name, kind, obj=None, zip_format=True, raw=None):
        if raw is not None:
            with open(os.path.join(OUT, name), "wb") as f:
                f.write(raw)
        else:
            save(obj, name, zip_format)
        bad[name] = kind

    bad_file("evil_os_system_zip.pt", "global",
             {"conv.weight": Call(os.system, "echo pwned")})
    bad_file("evil_eval_legacy.pt", "global",
             {"conv.weight": Call(eval, "1+1")}, zip_format=False)
    bad_file("evil_plain_pickle.pkl", "global",
             raw=pickle.dumps(Call(os.system, "echo pwned"), protocol=4))
    bad_file("whole_module.pt", "global", torch.nn.Linear(2, 2))
    small = OrderedDict([("conv.weight", torch.ones(2))])
    bad_file("evil_metadata_zip.pt", "global",
             {"epoch": 1, "state_dict": small,
              "args": argparse.Namespace(lr=0.1,
                                         hook=Call(os.system, "echo pwned"))})
    bad_file("evil_metadata_legacy.pt", "global",
             {"model": small, "best_acc1": np.array(
                 [Call(exec, "print('pwned')")], dtype=object)},
             zip_format=False)
    bad_file("not_checkpoint.txt", "format",
             raw=b"this is a text file, not a checkpoint\n")
    bad_file("empty.pt", "format", raw=b"")
    bad_file("plain_pickle_dict.pkl", "format",
             raw=pickle.dumps({"a": 1}, protocol=2))
    with zipfile.ZipFile(os.path.join(OUT, "plain.zip"), "w") as z:
        z.writestr("notes/readme.txt", "no data.pkl in here")
    bad["plain.zip"] = "format"
    bad_file("top_level_list.pt", "content", [torch.ones(2), torch.zeros(3)])
    bad_file("unknown_wrapper.pt", "content", {"net": sd, "epoch": 3})
    bad_file("both_wrappers.pt", "content", {"model": sd, "state_dict": sd})
    bad_file("non_tensor_value.pt", "content",
             OrderedDict([("conv.weight", torch.ones(1)), ("conv.note", 3)]))
    bad_file("numpy_in_state_dict.pt", "content",
             {"state_dict": OrderedDict([("conv.weight", torch.ones(1)),
                                         ("bn.momentum", np.float64(0.1))]),
              "epoch": 1})
    bad_file("duplicate_after_prefix.pt", "content",
             OrderedDict([("conv.weight", torch.ones(1)),
                          ("module.conv.weight", torch.ones(1))]))
    scripted = torch.jit.script(torch.nn.ReLU())
    torch.jit.save(scripted, os.path.join(OUT, "torchscript.pt"))
    bad["torchscript.pt"] = "format"

    manifest = {
        "torch": torch.__version__,
        "keys": list(expected),
        "expected": expected,
        "skipped": skipped,
        "good": good,
        "bad": bad,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
