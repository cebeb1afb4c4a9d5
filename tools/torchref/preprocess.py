#!/usr/bin/python3
"""Fixtures for dataset/ (docs/DESIGN.md, "Command line"): torchvision's evaluation
preprocessing of real photographs, and PIL's bilinear resize on its own.

The photographs come from Debian's python3-skimage package (scikit-image's
sample data): chelsea.png and coffee.png are CC0 (photographers Stefan van
der Walt and Rachel Michetti), camera.png is CC0 (Lav Varshney), rocket.jpg
is a SpaceX photograph released into the public domain. Get them with

    apt-get download python3-skimage && dpkg-deb -x python3-skimage_*.deb /tmp/sk

and, for the restart-marker and multi-scan re-codings, jpegtran from
Debian's libjpeg-turbo-progs; then run, from the repository root,

    /usr/bin/python3 tools/torchref/preprocess.py --source /tmp/sk/usr/lib/python3/dist-packages/skimage/data

Outputs (dataset/testdata/):
  photos/NAME            the test photographs (copies, crops and re-encodings)
  decoded_NAME.npy       uint8 H/5 x W/5 x 3: PIL's decoded RGB, every 5th pixel
  expected_NAME.npy      float32 3 x 56 x 56: Resize(256), CenterCrop(224),
                         ToTensor, Normalize(ImageNet), every 4th pixel
  resize_input.npy       uint8 23 x 37 x 3 random image
  resize_WxH.npy         uint8 H x W x 3: PIL Image.resize((W, H), BILINEAR)
  imagenet/val/CLASS/*   a tiny ImageNet-style folder
  folder_images.npy      float32 N x 3 x 28 x 28: ImageFolder + the transform,
                         every 8th pixel
  folder_labels.npy      int64 N
"""

import argparse
import os
import shutil
import subprocess
import tempfile

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, transforms

OUT = "dataset/testdata"

# Target sizes for the resize-only fixtures: downscaling both axes, one axis
# only, upscaling, big factors, near-identity and a single pixel.
RESIZE_SIZES = [(16, 11), (80, 50), (37, 9), (5, 23), (100, 7), (36, 24), (1, 1), (257, 3)]

TRANSFORM = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


def save(name, array):
    np.save(os.path.join(OUT, name), array)


def make_photos(src):
    """Writes the test photographs: several sizes, aspect ratios and kinds
    (RGB and grey PNG, 4:4:4, 4:2:2 and 4:2:0 JPEG, up- and downscaling)."""
    photos = os.path.join(OUT, "photos")
    os.makedirs(photos, exist_ok=True)
    # 381x270 RGB PNG, landscape, downscaled to 361x256.
    Image.open(os.path.join(src, "chelsea.png")).convert("RGB").crop((30, 20, 411, 290)).save(
        os.path.join(photos, "chelsea_crop.png"))
    # 640x427 4:4:4 JPEG as shipped, downscaled to 383x256.
    shutil.copyfile(os.path.join(src, "rocket.jpg"), os.path.join(photos, "rocket.jpg"))
    # 220x300 RGB PNG, portrait, upscaled to 256x349.
    Image.open(os.path.join(src, "coffee.png")).convert("RGB").crop((300, 40, 520, 340)).save(
        os.path.join(photos, "coffee_crop.png"))
    # 263x391 grey PNG, portrait, converted to RGB by the loader.
    Image.open(os.path.join(src, "camera.png")).crop((150, 60, 413, 451)).save(
        os.path.join(photos, "camera_crop.png"))
    # 391x291 4:2:0 JPEG (the usual ImageNet subsampling; odd sizes put a
    # half chroma block on the right and bottom edges), encoded by libjpeg.
    Image.open(os.path.join(src, "chelsea.png")).convert("RGB").crop((40, 0, 431, 291)).save(
        os.path.join(photos, "chelsea_420.jpg"), quality=90, subsampling=2)
    # 241x263 4:2:2 JPEG, portrait, upscaled.
    Image.open(os.path.join(src, "coffee.png")).convert("RGB").crop((100, 50, 341, 313)).save(
        os.path.join(photos, "coffee_422.jpg"), quality=85, subsampling=1)
    # Lossless re-codings (jpegtran) exercising the entropy decoder: restart
    # markers every 7 MCUs (not a multiple of the 25 MCUs per row), and one
    # scan per component with restarts every 5 blocks.
    jpegtran(["-restart", "7B"], "chelsea_420.jpg", "chelsea_420_rst.jpg")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as script:
        script.write("0;\n1;\n2;\n")
        script.flush()
        jpegtran(["-restart", "5B", "-scans", script.name], "coffee_422.jpg", "coffee_422_scans.jpg")
    # 263x391 greyscale (one-component) JPEG.
    Image.open(os.path.join(src, "camera.png")).crop((150, 60, 413, 451)).save(
        os.path.join(photos, "camera_grey.jpg"), quality=90)
    # 241x263 progressive JPEG: decoded by image/jpeg, not bit-exact.
    Image.open(os.path.join(src, "coffee.png")).convert("RGB").crop((100, 50, 341, 313)).save(
        os.path.join(photos, "coffee_progressive.jpg"), quality=85, progressive=True)
    return sorted(n for n in os.listdir(photos) if n.endswith((".png", ".jpg")))


def jpegtran(args, src, dst):
    photos = os.path.join(OUT, "photos")
    subprocess.run(["jpegtran", "-copy", "all", *args, "-outfile", os.path.join(photos, dst),
                    os.path.join(photos, src)], check=True)


def make_photo_fixtures(names):
    for name in names:
        path = os.path.join(OUT, "photos", name)
        with open(path, "rb") as f:
            img = Image.open(f).convert("RGB")
        stem = os.path.splitext(name)[0]
        save(f"decoded_{stem}.npy", np.asarray(img)[::5, ::5].copy())
        x = TRANSFORM(img)
        save(f"expected_{stem}.npy", x[:, ::4, ::4].contiguous().numpy().astype(np.float32))
        print(f"{name}: {img.size[0]}x{img.size[1]} -> {tuple(x.shape)}")


def make_resize_fixtures():
    rng = np.random.default_rng(20260101)
    src = rng.integers(0, 256, size=(23, 37, 3), dtype=np.uint8)
    # A few saturated runs so the clamping between passes matters.
    src[5:9, :, :] = 255
    src[:, 20:22, 1] = 0
    save("resize_input.npy", src)
    img = Image.fromarray(src, "RGB")
    for w, h in RESIZE_SIZES:
        save(f"resize_{w}x{h}.npy", np.asarray(img.resize((w, h), Image.BILINEAR)).copy())


def make_folder(src):
    """A tiny ImageNet-style folder under a val/ sub-folder, with a
    non-image file the loader must skip and a nested sub-folder."""
    root = os.path.join(OUT, "imagenet")
    shutil.rmtree(root, ignore_errors=True)
    val = os.path.join(root, "val")
    chelsea = Image.open(os.path.join(src, "chelsea.png")).convert("RGB")
    coffee = Image.open(os.path.join(src, "coffee.png")).convert("RGB")
    rocket = Image.open(os.path.join(src, "rocket.jpg")).convert("RGB")
    files = {
        "n02123045_cat/a.png": chelsea.crop((150, 40, 246, 104)),
        "n02123045_cat/b.png": chelsea.crop((200, 100, 248, 172)),
        "n07920052_coffee/c.png": coffee.crop((320, 100, 400, 160)),
        "n07920052_coffee/nested/d.png": coffee.crop((100, 200, 164, 264)),
        "n04266014_rocket/e.png": rocket.crop((280, 60, 350, 160)),
    }
    for rel, img in files.items():
        p = os.path.join(val, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        img.save(p)
    with open(os.path.join(val, "n07920052_coffee", "notes.txt"), "w") as f:
        f.write("not an image: the loader skips it\n")
    ds = datasets.ImageFolder(val, transform=TRANSFORM)
    xs = torch.stack([ds[i][0] for i in range(len(ds))])
    ys = np.array([ds[i][1] for i in range(len(ds))], dtype=np.int64)
    save("folder_images.npy", xs[:, :, ::8, ::8].contiguous().numpy().astype(np.float32))
    save("folder_labels.npy", ys)
    print("folder:", ds.classes, [os.path.relpath(p, val) for p, _ in ds.samples], ys.tolist())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="/usr/lib/python3/dist-packages/skimage/data",
                    help="scikit-image's data folder (from Debian's python3-skimage)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    make_photo_fixtures(make_photos(args.source))
    make_resize_fixtures()
    make_folder(args.source)


if __name__ == "__main__":
    main()
