"""A procedural image folder of three visually distinct classes, for tests and for trying
config/examples/animals.yaml without photos (the repository ships no images and downloads none):

    python tests/make_image_folder.py data/animals          # 3 x 60 images
    snakemake --cores all --configfile config/examples/animals.yaml

circles/ holds reddish discs, squares/ greenish squares, stripes/ bluish stripes, at random
positions and sizes on noisy backgrounds; the files mix sizes, PNG/JPEG/BMP/WebP and a few
grayscale and transparent images, as a real folder of photos would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, features

CLASSES = ("circles", "squares", "stripes")


def draw(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One RGB image (uint8, height x width x 3) of ``kind``, at a random size between 20 and 64 pixels."""
    h, w = (int(v) for v in rng.integers(20, 65, size=2))
    img = rng.normal(110, 35, size=(h, w, 3))  # noisy grey background
    colour = {"circles": (220, 50, 40), "squares": (40, 190, 60), "stripes": (40, 70, 220)}[kind]
    colour = np.clip(np.array(colour) + rng.normal(0, 25, size=3), 0, 255)
    yy, xx = np.mgrid[0:h, 0:w]
    size = rng.uniform(0.3, 0.45) * min(h, w)
    cy, cx = rng.uniform(size, h - size), rng.uniform(size, w - size)
    if kind == "circles":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= size**2
    elif kind == "squares":
        mask = (np.abs(yy - cy) <= size) & (np.abs(xx - cx) <= size)
    else:
        period = rng.uniform(4, 8) * h / 20
        mask = ((yy + rng.uniform(0, period)) % period) < period / 2
    img[mask] = colour + rng.normal(0, 12, size=(int(mask.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_image_folder(root: str | Path, n_per_class: int = 60, seed: int = 0) -> Path:
    """Write ``root/<class>/<class>-NNN.<ext>`` for the three classes; return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    formats = ["png", "jpg", "bmp"] + (["webp"] if features.check("webp") else [])
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            img = Image.fromarray(draw(kind, rng))
            ext = formats[i % len(formats)]
            if i % 10 == 3:
                img = img.convert("L")  # a grayscale file among colour ones
            elif i % 10 == 7 and ext in ("png", "webp"):
                img = img.convert("RGBA")  # with an alpha channel
            options = {"quality": 90} if ext in ("jpg", "webp") else {}
            img.save(root / kind / f"{kind}-{i:03d}.{ext}", **options)
    return root


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python tests/make_image_folder.py",
        description="Draw a folder of three image classes (circles/, squares/, stripes/) for trying the image studies.",
    )
    ap.add_argument("folder", help="where to write <folder>/<class>/<class>-NNN.<ext> (created; must not be a file)")
    ap.add_argument("images_per_class", nargs="?", type=int, default=60, help="images per class (default 60)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = ap.parse_args(argv)
    if args.images_per_class < 1:
        ap.error(f"images_per_class must be at least 1, got {args.images_per_class}")
    if Path(args.folder).exists() and not Path(args.folder).is_dir():
        ap.error(f"{args.folder} exists and is not a folder")
    out = make_image_folder(args.folder, args.images_per_class, args.seed)
    print(f"wrote {out}/{{{','.join(CLASSES)}}}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
