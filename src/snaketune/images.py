"""Image folders: one sub-folder per class, decoded once into a compact uint8 array.

``load_image`` is the one place an image file becomes the network's input (RGB or grayscale,
resized to the study's size): ``prepare`` uses it for every training image and
``snaketune.predict`` for a new one, so both see exactly the same pixels.

Memory: the decoded set is ``N x C x H x W`` bytes (uint8), and each trial holds it once more
as float32 (4 bytes a value) on its device, about 5 bytes per value in all. ``memory_needed``
does that arithmetic before anything is decoded, so a set that cannot fit fails at once.

Only ``prepare_data`` and ``predict`` import this module (and Pillow); trials never do.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from snaketune.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MODES = {1: "L", 3: "RGB"}  # data.channels -> Pillow mode
BYTES_PER_VALUE_IN_A_TRIAL = 5  # 1 (the uint8 array) + 4 (its float32 copy on the device)


@dataclass
class ImageFolder:
    """The files of an image folder, class by class (classes sorted by name, files by path)."""

    root: Path
    classes: list[str]
    files: list[list[Path]]  # per class
    ignored: list[Path] = field(default_factory=list)  # files that are not images by their extension

    @property
    def n_images(self) -> int:
        return sum(len(f) for f in self.files)


def _hidden(name: str) -> bool:
    return name.startswith(".")  # .DS_Store, .ipynb_checkpoints/ ...


def scan_folder(path: str | Path) -> ImageFolder:
    """List ``path``'s class sub-folders and their image files, with clear errors for a bad layout."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"image folder {root} does not exist (data.path)")
    if not root.is_dir():
        raise DataError(f"{root} is a file, but data.source: images needs a folder with one sub-folder per class (data.path)")
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir() and not _hidden(d.name)), key=lambda d: d.name)
    example = "e.g. cats/, dogs/, horses/"
    if not class_dirs:
        raise DataError(f"image folder {root} has no sub-folders; put the images of each class in a sub-folder ({example})")
    if len(class_dirs) < 2:
        raise DataError(
            f"image folder {root} has one class folder ({class_dirs[0].name}/); classification needs at least two ({example})"
        )
    files: list[list[Path]] = []
    ignored: list[Path] = []
    for d in class_dirs:
        found = sorted(p for p in d.rglob("*") if p.is_file() and not any(map(_hidden, p.relative_to(d).parts)))
        images = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS]
        others = [p for p in found if p.suffix.lower() not in IMAGE_EXTENSIONS]
        if not images:
            what = f"only {len(others)} other file(s), e.g. {others[0].name}" if others else "nothing"
            raise DataError(
                f"class folder {d} holds no images ({what}); add {', '.join(IMAGE_EXTENSIONS)} files or remove the folder"
            )
        files.append(images)
        ignored += others
    return ImageFolder(root, [d.name for d in class_dirs], files, ignored)


def load_image(path: str | Path, size: Sequence[int], channels: int) -> np.ndarray:
    """One image file as uint8 ``(channels, height, width)``: EXIF rotation applied, converted to
    RGB (3) or grayscale (1), resized (stretched) to ``size = (height, width)``.

    Raises ``OSError`` (or ``ValueError``) for a file Pillow cannot decode, a truncated one included.
    """
    height, width = int(size[0]), int(size[1])
    mode = MODES[channels]
    with Image.open(path) as img:
        # JPEG only: decode at a reduced scale that is still at least the target size (much faster for photos).
        side = max(height, width)
        img.draft(mode, (side, side))
        img.load()  # decodes the whole file: a truncated file fails here, not later
        img = ImageOps.exif_transpose(img)
        if img.mode.startswith("I;16") or img.mode in ("I", "F"):
            img = Image.fromarray(_to_8bit(np.asarray(img)), "L")  # Pillow's own conversion clips at 255
        if img.mode != mode:
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                # Transparent pixels become white rather than whatever colour hides under them.
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, rgba)
            img = img.convert(mode)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """16-bit (or 32-bit) grey levels to 0..255: 8-bit data as it is, 16-bit data divided by 257."""
    top = 255.0 if values.max(initial=0) <= 255 else 65535.0
    return np.clip(values.astype(np.float64) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_needed(n_images: int, channels: int, size: Sequence[int]) -> tuple[int, int]:
    """(bytes of the decoded uint8 array, bytes one trial needs for it: uint8 + float32 copy)."""
    values = n_images * channels * int(size[0]) * int(size[1])
    return values, values * BYTES_PER_VALUE_IN_A_TRIAL


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def check_memory(folder: ImageFolder, channels: int, size: Sequence[int], max_memory_mb: float | None) -> None:
    """Fail before decoding when one trial's copy of the data would not fit the memory budget."""
    array, per_trial = memory_needed(folder.n_images, channels, size)
    if max_memory_mb is not None:
        budget, where = int(max_memory_mb * 1e6), f"data.max_memory_mb ({max_memory_mb:g})"
    else:
        available = available_memory_bytes()
        if available is None:
            return
        budget, where = available, "the memory available on this machine (MemAvailable)"
    if per_trial > budget:
        h, w = int(size[0]), int(size[1])
        fits = images_per_budget(budget / 1e6, channels, size)
        raise DataError(
            f"image folder {folder.root}: {folder.n_images:,} images of {channels}x{h}x{w} are {_mb(array)} decoded "
            f"(uint8) and need about {_mb(per_trial)} in each trial (+ a float32 copy), more than {where}: {_mb(budget)}. "
            f"About {fits:,} images of this size fit; use a smaller data.image_size, fewer images or data.channels: 1"
            + ("" if max_memory_mb is not None else ", or set data.max_memory_mb if trials run on larger machines")
        )


def load_images_source(
    path: str | Path,
    size: Sequence[int] = (32, 32),
    channels: int = 3,
    skip_unreadable: bool = False,
    max_memory_mb: float | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """Decode every image of a class-per-folder tree once: (X uint8 (N, C, H, W), y, classes, report).

    ``report`` says how many images were decoded, how long it took, which files were skipped and
    which were ignored (not images by their extension). Unreadable files are an error naming them,
    or, with ``skip_unreadable``, a warning (and listed in the report).
    """
    if channels not in MODES:
        raise DataError(f"data.channels must be 1 (grayscale) or 3 (RGB), not {channels!r}")
    folder = scan_folder(path)
    check_memory(folder, channels, size, max_memory_mb)
    h, w = int(size[0]), int(size[1])
    X = np.empty((folder.n_images, channels, h, w), dtype=np.uint8)
    y = np.empty(folder.n_images, dtype=np.int64)
    keep = np.ones(folder.n_images, dtype=bool)
    bad: list[tuple[Path, str]] = []
    t0 = time.perf_counter()
    i = 0
    for c, class_files in enumerate(folder.files):
        for p in class_files:
            try:
                X[i] = load_image(p, (h, w), channels)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                bad.append((p, str(e) or type(e).__name__))
                keep[i] = False
            y[i] = c
            i += 1
    seconds = time.perf_counter() - t0
    rel = lambda p: os.path.relpath(p, folder.root)  # noqa: E731
    if bad and not skip_unreadable:
        listed = "; ".join(f"{rel(p)} ({why})" for p, why in bad[:10]) + ("; ..." if len(bad) > 10 else "")
        raise DataError(
            f"image folder {folder.root}: {len(bad)} file(s) cannot be read as images: {listed}. "
            "Fix or remove them, or set data.skip_unreadable: true to skip them with a warning"
        )
    for p, why in bad:
        warnings.warn(f"skipped unreadable image {p}: {why}", stacklevel=2)
    if bad:
        X, y = X[keep], y[keep]
        for c, name in enumerate(folder.classes):
            if not (y == c).any():
                raise DataError(
                    f"class folder {folder.root / name} holds no readable images after skipping {len(bad)} unreadable file(s)"
                )
    report = {
        "decoded_images": int(len(y)),
        "decode_seconds": round(seconds, 3),
        "skipped": [rel(p) for p, _ in bad],
        "ignored": [rel(p) for p in folder.ignored],
        "image_size": [h, w],
        "channels": channels,
        "array_bytes": int(X.nbytes),
        "array_mb": round(X.nbytes / 1e6, 3),
        "trial_memory_mb": round(memory_needed(len(y), channels, (h, w))[1] / 1e6, 3),
    }
    return X, y, folder.classes, report


def images_per_budget(budget_mb: float, channels: int, size: Sequence[int]) -> int:
    """How many images of this size fit a memory budget (the arithmetic of the docs)."""
    return math.floor(budget_mb * 1e6 / (BYTES_PER_VALUE_IN_A_TRIAL * channels * int(size[0]) * int(size[1])))
