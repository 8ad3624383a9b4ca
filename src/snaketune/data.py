"""Data sources and the one split every trial shares.

``prepare`` reads a source once, checks it, fixes a stratified train/validation/test split and
writes one uncompressed ``.npz`` that every trial loads in milliseconds. Features are
stored raw; trainers standardise them with statistics of the part they train on, so nothing
of the validation or test parts leaks into training. Images (``source: images``) are decoded
once, here, and stored as uint8 ``(N, C, H, W)``: 4x smaller than float32, converted on the
trial's device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snaketune.errors import DataError

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = {TRAIN: "train", VAL: "validation", TEST: "test"}


@dataclass
class Dataset:
    X: np.ndarray  # float32 (n, features...), or uint8 (n, channels, height, width) for images
    y: np.ndarray  # int64 class index, (n,)
    classes: list[str]  # class index -> name
    source: str
    info: dict[str, Any] = field(default_factory=dict)  # what reading the source did (images: decoding)

    def __post_init__(self) -> None:
        if len(self.X) != len(self.y):
            raise DataError(f"{self.source}: X has {len(self.X)} rows but y has {len(self.y)}")


def _encode_labels(labels: np.ndarray, source: str) -> tuple[np.ndarray, list[str]]:
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise DataError(f"{source}: the labels contain NaN or infinite values")
        if np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
    values, y = np.unique(labels, return_inverse=True)
    return y.astype(np.int64), [str(v) for v in values]


def _check_features(X: np.ndarray, source: str, names: list[str] | None = None) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{source}: features must be numeric, but have dtype {X.dtype}")
    X = X.astype(np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        what = f"column {names[col]!r}" if names else f"feature {col}"
        raise DataError(
            f"{source}: {int(bad.sum())} NaN or infinite value(s), the first in row {row}, {what}; "
            "clean or impute them before tuning"
        )
    return X


def load_digits_source() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    return Dataset(d.data.astype(np.float32), d.target.astype(np.int64), [str(c) for c in d.target_names], "digits")


def load_mnist1d_source(n_samples: int | None, seed: int) -> Dataset:
    # make_dataset generates the data locally; mnist1d's get_dataset would download it.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = n_samples or 5000
    args.seed = 42 + seed
    d = make_dataset(args)
    X = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
    return Dataset(X, y, [str(i) for i in range(10)], "mnist1d")


def load_synthetic_source(n_samples: int | None, seed: int) -> Dataset:
    """Three Gaussian classes in 16 dimensions: learnable in a few epochs, not trivially."""
    n = n_samples or 600
    rng = np.random.default_rng(seed)
    n_classes, n_features = 3, 16
    centers = rng.normal(0.0, 1.0, size=(n_classes, n_features))
    y = np.arange(n) % n_classes
    X = centers[y] + rng.normal(0.0, 1.2, size=(n, n_features))
    return Dataset(X.astype(np.float32), y.astype(np.int64), [f"class{i}" for i in range(n_classes)], "synthetic")


def load_csv_source(path: str, label_column: str) -> Dataset:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except Exception as e:
        raise DataError(f"cannot read {path} as CSV: {e}") from None
    if label_column not in df.columns:
        from snaketune.errors import suggest

        raise DataError(
            f"{path}: no label column {label_column!r}{suggest(label_column, list(map(str, df.columns)))}; "
            f"columns: {', '.join(map(str, df.columns[:20]))} (set data.label_column)"
        )
    features = df.drop(columns=[label_column])
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise DataError(
            f"{path}: column(s) {', '.join(map(repr, non_numeric[:5]))} are not numeric; encode them as numbers or drop them"
        )
    if features.shape[1] == 0:
        raise DataError(f"{path}: there are no feature columns besides {label_column!r}")
    labels = df[label_column]
    if labels.isna().any():
        raise DataError(f"{path}: column {label_column!r} has {int(labels.isna().sum())} empty label(s)")
    X = _check_features(features.to_numpy(), path, [str(c) for c in features.columns])
    y, classes = _encode_labels(labels.to_numpy(), path)
    return Dataset(X, y, classes, path)


def load_npz_source(path: str) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("X", "y") if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)}; it holds {', '.join(f.files) or 'nothing'}")
            X, labels = f["X"], f["y"]
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"cannot read {path} as .npz: {e}") from None
    if labels.ndim != 1:
        raise DataError(f"{path}: y must be one-dimensional (class labels), but has shape {labels.shape}")
    X = _check_features(X, path)
    y, classes = _encode_labels(labels, path)
    return Dataset(X, y, classes, path)


def load_images_folder(data: Mapping[str, Any]) -> Dataset:
    from snaketune.images import load_images_source  # Pillow: only prepare_data and predict import it

    X, y, classes, report = load_images_source(
        data["path"],
        data.get("image_size") or (32, 32),
        data.get("channels") or 3,
        skip_unreadable=bool(data.get("skip_unreadable")),
        max_memory_mb=data.get("max_memory_mb"),
    )
    return Dataset(X, y, classes, str(data["path"]), report)


def load_source(data: Mapping[str, Any]) -> Dataset:
    source = data["source"]
    if source == "digits":
        return load_digits_source()
    if source == "mnist1d":
        return load_mnist1d_source(data.get("n_samples"), data["seed"])
    if source == "synthetic":
        return load_synthetic_source(data.get("n_samples"), data["seed"])
    if source == "csv":
        return load_csv_source(data["path"], data["label_column"])
    if source == "npz":
        return load_npz_source(data["path"])
    if source == "images":
        return load_images_folder(data)
    raise DataError(f"unknown data.source {source!r}")


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int, classes: list[str] | None = None
) -> np.ndarray:
    """Assign each example to TRAIN, VAL or TEST, keeping class proportions in every part."""
    rng = np.random.default_rng(seed)
    split = np.full(len(y), TRAIN, dtype=np.int8)
    counts = np.bincount(y)
    if (counts > 0).sum() < 2:
        raise DataError("the data has a single class; classification needs at least two")
    for c in range(len(counts)):
        idx = np.flatnonzero(y == c)
        if len(idx) == 0:
            continue
        name = classes[c] if classes else str(c)
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        if n_test < 1 or n_val < 1 or len(idx) - n_test - n_val < 1:
            raise DataError(
                f"class {name!r} has {len(idx)} example(s), too few to put at least one in each of "
                f"train, validation and test (val_fraction={val_fraction}, test_fraction={test_fraction})"
            )
        idx = rng.permutation(idx)
        split[idx[:n_test]] = TEST
        split[idx[n_test : n_test + n_val]] = VAL
    return split


def stratified_folds(y: np.ndarray, split: np.ndarray, k: int, seed: int, classes: list[str] | None = None) -> np.ndarray:
    """Assign every train+validation example to one of ``k`` folds, keeping class proportions;
    test examples get -1 (they never enter cross-validation)."""
    fold = np.full(len(y), -1, dtype=np.int8)
    if k <= 1:
        fold[split != TEST] = 0
        return fold
    rng = np.random.default_rng([seed, k])
    for c in np.unique(y):
        idx = np.flatnonzero((y == c) & (split != TEST))
        if len(idx) < k:
            name = classes[c] if classes else str(c)
            raise DataError(
                f"class {name!r} has {len(idx)} example(s) outside the test part, too few for cv.folds={k}; "
                "lower cv.folds or add examples"
            )
        idx = rng.permutation(idx)
        fold[idx] = np.arange(len(idx)) % k
    return fold


def prepare(data: Mapping[str, Any], out: str | Path, folds: int = 1) -> dict[str, Any]:
    """Read the source, split it (and fold it), write ``out`` (.npz); return a summary for people."""
    import io

    from snaketune.files import atomic_write_bytes

    ds = load_source(data)
    try:
        split = stratified_split(ds.y, data["val_fraction"], data["test_fraction"], data["seed"], ds.classes)
        fold = stratified_folds(ds.y, split, folds, data["seed"], ds.classes)
    except DataError as e:
        raise DataError(f"{ds.source}: {e}") from None
    buf = io.BytesIO()
    np.savez(buf, X=ds.X, y=ds.y, split=split, fold=fold, n_folds=np.int64(folds), classes=np.array(ds.classes))
    atomic_write_bytes(out, buf.getvalue())
    summary = {
        "folds": folds,
        "source": ds.source,
        "n_examples": int(len(ds.y)),
        "input_shape": list(ds.X.shape[1:]),
        "dtype": str(ds.X.dtype),
        "classes": ds.classes,
        "split": {SPLIT_NAMES[k]: int((split == k).sum()) for k in SPLIT_NAMES},
        "class_counts": {ds.classes[c]: int(n) for c, n in enumerate(np.bincount(ds.y))},
    }
    if ds.info:
        summary["images"] = ds.info
    return summary


@dataclass
class Prepared:
    X: np.ndarray
    y: np.ndarray
    split: np.ndarray  # TRAIN, VAL or TEST per example
    classes: list[str]
    fold: np.ndarray | None = None  # cross-validation fold per example (-1 = test)
    n_folds: int = 1

    @property
    def is_images(self) -> bool:
        """Decoded images: uint8 (n, channels, height, width), normalised per channel by the trainer."""
        return self.X.dtype == np.uint8 and self.X.ndim == 4

    def rows(self, stage: str, fold: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks (train, evaluate) for a search run (of ``fold``) or the final stage."""
        if stage == "final":
            return self.split != TEST, self.split == TEST
        if self.n_folds > 1:
            if not 0 <= fold < self.n_folds:
                raise DataError(f"fold {fold} does not exist: the data has {self.n_folds} folds (0..{self.n_folds - 1})")
            return (self.fold >= 0) & (self.fold != fold), self.fold == fold
        return self.split == TRAIN, self.split == VAL


def load_prepared(path: str | Path) -> Prepared:
    with np.load(path, allow_pickle=False) as f:
        fold = f["fold"] if "fold" in f.files else None
        n_folds = int(f["n_folds"]) if "n_folds" in f.files else 1
        return Prepared(f["X"], f["y"], f["split"], [str(c) for c in f["classes"]], fold, n_folds)
