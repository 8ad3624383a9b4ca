"""Data sources and the one split every trial shares.

``prepare`` reads a source once, checks it, decides the task (``data.task``: classes or values,
:mod:`snaketune.task`), fixes a train/validation/test split (stratified by class for
classification, random for regression) and writes one uncompressed ``.npz`` that every trial
loads in milliseconds. Features are
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
from snaketune.task import AUTO, CLASSIFICATION, REGRESSION, SOURCE_TASKS, TaskDecision, check_objective, detect_task

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = {TRAIN: "train", VAL: "validation", TEST: "test"}


@dataclass
class Dataset:
    X: np.ndarray  # float32 (n, features...), or uint8 (n, channels, height, width) for images
    y: np.ndarray  # (n,): int64 class index; float64 target values for regression
    classes: list[str]  # class index -> name; empty for regression
    source: str
    info: dict[str, Any] = field(default_factory=dict)  # what reading the source did (images: decoding)
    decision: TaskDecision = TaskDecision(CLASSIFICATION, "the labels are classes")  # the task and its rule
    features: list[str] | None = None  # a CSV's feature columns, in order (None: unnamed)

    def __post_init__(self) -> None:
        if len(self.X) != len(self.y):
            raise DataError(f"{self.source}: X has {len(self.X)} rows but y has {len(self.y)}")

    @property
    def task(self) -> str:
        return self.decision.task


def _encode_labels(labels: np.ndarray, source: str) -> tuple[np.ndarray, list[str]]:
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise DataError(f"{source}: the labels contain NaN or infinite values")
        if np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
    values, y = np.unique(labels, return_inverse=True)
    return y.astype(np.int64), [str(v) for v in values]


def _regression_targets(labels: np.ndarray, source: str, name: str = "y", first_line: int | None = None) -> np.ndarray:
    """Regression targets as float64, or a DataError naming the first value that is not a finite number."""
    import pandas as pd

    values = pd.to_numeric(pd.Series(labels), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad))
        where = f"line {row + first_line}" if first_line is not None else f"row {row}"
        raise DataError(
            f"{source}: {name} must hold a number per example for regression, but {where} holds {labels[row]!r} "
            f"({int(bad.sum())} such value(s)); fix them, or set data.task: classification if {name} holds classes"
        )
    if (np.abs(values) > np.finfo(np.float32).max).any():
        raise DataError(f"{source}: {name} has values beyond float32's range (about ±3.4e38); rescale the target")
    return values


def _labels(
    labels: np.ndarray, task: str, source: str, name: str = "y", first_line: int | None = None
) -> tuple[np.ndarray, list[str], TaskDecision]:
    """(y, classes, decision) of a file's labels under ``data.task: task`` (:func:`snaketune.task.detect_task`)."""
    try:
        decision = detect_task(labels, task)
    except DataError as e:
        raise DataError(f"{source}: {name}: {e}") from None
    if decision.task == REGRESSION:
        return _regression_targets(labels, source, name, first_line), [], decision
    y, classes = _encode_labels(labels, source)
    return y, classes, decision


def _check_features(X: np.ndarray, source: str, names: list[str] | None = None, first_line: int | None = None) -> np.ndarray:
    """``X`` as float32, or a DataError naming the first bad value's row (a CSV's line: row 0 is on
    ``first_line``) and column (``names``: a CSV's feature columns; else the feature's index)."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{source}: features must be numeric (integers, floats or booleans), but have dtype {X.dtype}")

    def where(bad: np.ndarray) -> str:
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        feature = index[1:] if len(index) > 2 else index[1]
        row = f"on line {index[0] + first_line}" if first_line is not None else f"in row {index[0]}"
        return f"the first {row}, " + (f"column {names[feature]!r}" if names else f"feature {feature}")

    if X.dtype.kind == "f":
        bad = ~np.isfinite(X)
        if bad.any():
            raise DataError(
                f"{source}: {int(bad.sum())} NaN or infinite value(s), {where(bad)}; clean or impute them before tuning"
            )
        big = np.abs(X) > np.finfo(np.float32).max
        if big.any():
            raise DataError(
                f"{source}: {int(big.sum())} value(s) beyond float32's range (about ±3.4e38), {where(big)}; "
                "rescale the feature (features are trained on as float32)"
            )
    return X.astype(np.float32)


def _source_decision(source: str, task: str) -> TaskDecision:
    """A built-in source's task; a DataError when ``data.task`` asks for the other one."""
    known = SOURCE_TASKS[source]
    if task not in (AUTO, known):
        raise DataError(
            f"data.task is {task}, but data.source {source} holds {'classes' if known == CLASSIFICATION else 'values'}"
        )
    return detect_task(np.empty(0), task, source)


def load_diabetes_source() -> Dataset:
    """scikit-learn's diabetes data (bundled with it, never downloaded): 442 patients, 10 features
    (age, sex, body mass index, blood pressure, six blood serum measurements, unscaled), and a
    measure of disease progression one year later, from 25 to 346: a small, noisy regression problem."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False)
    X, y = d.data.astype(np.float32), d.target.astype(np.float64)
    return Dataset(X, y, [], "diabetes", decision=_source_decision("diabetes", AUTO), features=list(d.feature_names))


# scikit-learn's 8x8 digits: 1,797 images, 64 pixels (0-16) and the digit, one row each.
DIGITS_SHAPE = (1797, 65)


def digits_file() -> Path | None:
    """The file scikit-learn's ``load_digits`` reads (``sklearn/datasets/data/digits.csv.gz``; read
    in 1.9.1, and tests/test_data.py fails if it moves), found without importing scikit-learn; None
    if it is not there."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # a top-level name: finds the package, runs none of it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def read_digits_file(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(pixels, digits) from that file, read as ``load_digits`` reads it; None unless it holds what
    ``load_digits`` would return (1,797 rows of 64 pixels and a digit 0-9)."""
    import gzip

    try:
        with gzip.open(path, "rt") as fh:
            rows = np.loadtxt(fh, delimiter=",")
    except (OSError, ValueError, EOFError):
        return None
    if rows.shape != DIGITS_SHAPE:
        return None
    digits = rows[:, -1]
    if not np.array_equal(digits, np.round(digits)) or digits.min() < 0 or digits.max() > 9:
        return None
    return rows[:, :-1], digits.astype(np.int64)


def load_digits_source() -> Dataset:
    """scikit-learn's digits. Read from its file directly when it is where ``load_digits`` keeps it
    (importing scikit-learn costs about a second, on the critical path of every study that starts
    with prepare_data; tests/test_data.py checks that both give the same arrays), else by
    ``load_digits`` itself."""
    path = digits_file()
    found = read_digits_file(path) if path is not None else None
    if found is None:
        from sklearn.datasets import load_digits

        d = load_digits()
        found = d.data, d.target
    pixels, digits = found
    return Dataset(pixels.astype(np.float32), digits.astype(np.int64), [str(c) for c in range(10)], "digits")


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


def _check_data_file(path: str, source: str) -> None:
    """A DataError unless ``path`` (data.path) is a file, saying what it is instead."""
    p = Path(path)
    if p.is_dir():
        raise DataError(
            f"data.path {path} is a folder, but data.source: {source} reads one .{source} file "
            "(data.source: images reads a folder with one sub-folder per class)"
        )
    if not p.exists():
        raise DataError(f"data file {path} does not exist (data.path)")


def load_csv_source(path: str, label_column: str, task: str = AUTO) -> Dataset:
    import pandas as pd

    _check_data_file(path, "csv")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; a CSV needs a header line, then one line per example") from None
    except Exception as e:
        raise DataError(f"cannot read {path} as CSV: {e}") from None
    if len(df) == 0:
        raise DataError(f"{path} has a header line but no examples; a CSV needs one line per example after the header")
    if label_column not in df.columns:
        from snaketune.errors import suggest

        raise DataError(
            f"{path}: no label column {label_column!r}{suggest(label_column, list(map(str, df.columns)))}; "
            f"columns: {', '.join(map(str, df.columns[:20]))} (set data.label_column)"
        )
    features = df.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise DataError(f"{path}: there are no feature columns besides {label_column!r}")
    # A column of only True/False is a feature of 1s and 0s (pandas reads it as bool).
    features = features.astype({c: np.float64 for c in features.columns if pd.api.types.is_bool_dtype(features[c])})
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        first = non_numeric[0]
        cells = features[first]
        also = f" (also not numeric: {', '.join(map(repr, non_numeric[1:6]))}{' ...' if len(non_numeric) > 6 else ''})"
        also = also if len(non_numeric) > 1 else ""
        if cells.dropna().map(lambda v: isinstance(v, bool)).all():
            row = int(np.argmax(cells.isna().to_numpy()))
            raise DataError(
                f"{path}: column {first!r} holds True/False with empty cells, the first on line {row + 2}{also}; "
                "fill them (a True/False column is read as 1/0) or drop the column"
            )
        bad = cells.notna() & pd.to_numeric(cells, errors="coerce").isna()
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{path}: column {first!r} is not numeric: line {row + 2} holds {cells.iloc[row]!r}{also}; "
            "encode such columns as numbers or drop them"
        )
    labels = df[label_column]
    if labels.isna().any():
        row = int(np.argmax(labels.isna().to_numpy()))
        raise DataError(
            f"{path}: column {label_column!r} has {int(labels.isna().sum())} empty or missing label(s) "
            f"(cells such as '', NA or NaN), the first on line {row + 2}; every example needs its class"
        )
    names = [str(c) for c in features.columns]
    X = _check_features(features.to_numpy(dtype=np.float64), path, names, first_line=2)
    y, classes, decision = _labels(labels.to_numpy(), task, path, f"column {label_column!r}", first_line=2)
    return Dataset(X, y, classes, path, decision=decision, features=names)


def _npz_array(archive: Any, name: str, path: str) -> np.ndarray:
    """Array ``name`` of an open .npz; never unpickled (loading pickled data can run code)."""
    try:
        return archive[name]
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise
        how = "np.asarray(y, dtype=str) for class names" if name == "y" else "np.asarray(X, dtype=np.float32)"
        raise DataError(
            f"{path}: array {name} holds Python objects (dtype object: rows of different lengths, or numbers "
            f"mixed with text), which snaketune never loads; save it as a numeric or text array, e.g. {how}"
        ) from None


def load_npz_source(path: str, task: str = AUTO) -> Dataset:
    _check_data_file(path, "npz")
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise DataError(f"cannot read {path} as .npz: {e}") from None
        with open(path, "rb") as fh:
            head = fh.read(16)
        what = (
            "pickled Python objects, which snaketune never loads"
            if head[:1] == b"\x80"
            else f"neither an .npz archive nor a .npy array (it starts with {head!r})"
        )
        raise DataError(f"{path} holds {what}; save the data with np.savez({path!r}, X=X, y=y)") from None
    except Exception as e:
        raise DataError(f"cannot read {path} as .npz: {e}") from None
    if not hasattr(archive, "files"):  # a .npy file: one array, not the two arrays X and y
        raise DataError(
            f"{path} holds one array of shape {archive.shape} (a .npy file), not an .npz archive of arrays X and y; "
            f"save the data with np.savez({path!r}, X=X, y=y)"
        )
    try:
        with archive:
            missing = [k for k in ("X", "y") if k not in archive.files]
            if missing:
                held = ", ".join(archive.files) or "nothing"
                raise DataError(f"{path}: missing array(s) {', '.join(missing)}; it holds {held}")
            X, labels = _npz_array(archive, "X", path), _npz_array(archive, "y", path)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"cannot read {path} as .npz: {e}") from None
    if X.ndim < 2:
        one = " (for one feature per example, save X.reshape(-1, 1))" if X.ndim == 1 else ""
        raise DataError(
            f"{path}: X must hold one row per example, shape (examples, features) or (examples, channels, height, "
            f"width), but has shape {X.shape}{one}"
        )
    if labels.ndim != 1:
        flat = " (save y.ravel())" if labels.ndim == 2 and labels.shape[1] == 1 else ""
        raise DataError(f"{path}: y must be one-dimensional (one class label per example), but has shape {labels.shape}{flat}")
    if len(X) != len(labels):
        raise DataError(f"{path}: X has {len(X)} rows but y has {len(labels)} labels; they must have one per example")
    if len(X) == 0:
        raise DataError(f"{path}: X and y have no rows; there must be one per example")
    if X[0].size == 0:
        raise DataError(f"{path}: X has shape {X.shape}, no features per example")
    X = _check_features(X, path)
    y, classes, decision = _labels(labels, task, path, "array y")
    return Dataset(X, y, classes, path, decision=decision)


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
    source, task = data["source"], data.get("task", AUTO)
    if source == "csv":
        return load_csv_source(data["path"], data["label_column"], task)
    if source == "npz":
        return load_npz_source(data["path"], task)
    if source == "diabetes":
        return load_diabetes_source()
    if source not in SOURCE_TASKS:
        raise DataError(f"unknown data.source {source!r}")
    decision = _source_decision(source, task)
    if source == "digits":
        ds = load_digits_source()
    elif source == "mnist1d":
        ds = load_mnist1d_source(data.get("n_samples"), data["seed"])
    elif source == "synthetic":
        ds = load_synthetic_source(data.get("n_samples"), data["seed"])
    else:
        ds = load_images_folder(data)
    ds.decision = decision
    return ds


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int, classes: list[str] | None = None
) -> np.ndarray:
    """Assign each example to TRAIN, VAL or TEST, keeping class proportions in every part."""
    rng = np.random.default_rng(seed)
    split = np.full(len(y), TRAIN, dtype=np.int8)
    if len(y) == 0:
        raise DataError("the data has no examples")
    counts = np.bincount(y)
    if (counts > 0).sum() < 2:
        only = classes[int(np.argmax(counts))] if classes else str(int(np.argmax(counts)))
        raise DataError(
            f"the data has a single class ({only!r}, {len(y)} examples); classification needs at least two "
            "(is data.label_column the class?)"
        )
    for c in range(len(counts)):
        idx = np.flatnonzero(y == c)
        if len(idx) == 0:
            continue
        name = classes[c] if classes else str(c)
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        if n_test < 1 or n_val < 1 or len(idx) - n_test - n_val < 1:
            # Many classes of one or two examples: the label is likely a measurement, not a class.
            hint = (
                f"; the data has {len(counts)} classes in {len(y)} examples: is data.label_column a class label? "
                "(data.task: regression predicts it as a value)"
                if len(counts) > len(y) / 4
                else ""
            )
            raise DataError(
                f"class {name!r} has {len(idx)} example(s), too few to put at least one in each of "
                f"train, validation and test (val_fraction={val_fraction}, test_fraction={test_fraction}){hint}"
            )
        idx = rng.permutation(idx)
        split[idx[:n_test]] = TEST
        split[idx[n_test : n_test + n_val]] = VAL
    return split


def stratified_folds(y: np.ndarray, split: np.ndarray, k: int, seed: int, classes: list[str] | None = None) -> np.ndarray:
    """Assign every train+validation example to one of ``k`` folds, keeping class proportions;
    test examples get -1 (they never enter cross-validation). Every fold gets at least one example
    of every class, so no fold is empty: a fold without validation rows would score 0.0 (a perfect
    loss), averaged in with the others."""
    fold = np.full(len(y), -1, dtype=np.int32)  # any k that can pass the check below (k <= rows)
    if k <= 1:
        fold[split != TEST] = 0
        return fold
    pool = split != TEST
    present = np.unique(y)
    per_class = np.bincount(y[pool], minlength=int(present.max()) + 1)[present]
    c, smallest = int(present[np.argmin(per_class)]), int(per_class.min())
    if smallest < k:
        name = classes[c] if classes else str(c)
        valid = f"cv.folds between 2 and {smallest}, or cv.folds: 1" if smallest >= 2 else "cv.folds: 1"
        raise DataError(
            f"class {name!r} has {smallest} example(s) outside the test part, too few for cv.folds={k}: every fold "
            f"needs one example of every class ({int(pool.sum())} examples outside the test part in all); "
            f"use {valid} (one validation part), or add examples"
        )
    rng = np.random.default_rng([seed, k])
    for c in present:
        idx = rng.permutation(np.flatnonzero((y == c) & pool))
        fold[idx] = np.arange(len(idx)) % k
    return fold


def random_split(n: int, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Assign each of ``n`` examples to TRAIN, VAL or TEST at random (regression: no classes to stratify by)."""
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    if n_test < 1 or n_val < 1 or n - n_test - n_val < 1:
        raise DataError(
            f"{n} example(s) are too few to put at least one in each of train, validation and test "
            f"(val_fraction={val_fraction}, test_fraction={test_fraction})"
        )
    split = np.full(n, TRAIN, dtype=np.int8)
    idx = np.random.default_rng(seed).permutation(n)
    split[idx[:n_test]] = TEST
    split[idx[n_test : n_test + n_val]] = VAL
    return split


def random_folds(split: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Plain k-fold (regression): every train+validation example in one of ``k`` folds of sizes that
    differ by one at most, at random; test examples get -1. No fold is empty."""
    fold = np.full(len(split), -1, dtype=np.int32)
    pool = np.flatnonzero(split != TEST)
    if k <= 1:
        fold[pool] = 0
        return fold
    if len(pool) < k:
        valid = f"cv.folds between 2 and {len(pool)}, or cv.folds: 1" if len(pool) >= 2 else "cv.folds: 1"
        raise DataError(
            f"{len(pool)} example(s) outside the test part are too few for cv.folds={k}: every fold needs one; use {valid}"
        )
    fold[np.random.default_rng([seed, k]).permutation(pool)] = np.arange(len(pool)) % k
    return fold


def prepare_params(data: Mapping[str, Any]) -> dict[str, Any]:
    """The data settings as prepare_data's params (a rerun trigger): ``data.task`` only when set, so
    a study prepared before the key existed is not prepared (and trained) again."""
    return {k: v for k, v in data.items() if not (k == "task" and v == AUTO)}


def prepare(data: Mapping[str, Any], out: str | Path, folds: int = 1, objective: str | None = None) -> dict[str, Any]:
    """Read the source, decide the task, split it (and fold it), write ``out`` (.npz); return a
    summary for people. ``objective``: the built-in trainer's objective metric, which must be one
    it reports for the task (a DataError says what to set otherwise)."""
    import io

    from snaketune.files import atomic_write_bytes

    ds = load_source(data)
    if objective is not None:
        label = f"column {data['label_column']!r}" if data["source"] == "csv" else f"data.source {data['source']}"
        try:
            check_objective(ds.decision, objective, label)
        except DataError as e:
            raise DataError(f"{ds.source}: {e}") from None
    try:
        if ds.task == REGRESSION:
            split = random_split(len(ds.y), data["val_fraction"], data["test_fraction"], data["seed"])
            fold = random_folds(split, folds, data["seed"])
        else:
            split = stratified_split(ds.y, data["val_fraction"], data["test_fraction"], data["seed"], ds.classes)
            fold = stratified_folds(ds.y, split, folds, data["seed"], ds.classes)
    except DataError as e:
        raise DataError(f"{ds.source}: {e}") from None
    arrays = dict(X=ds.X, y=ds.y, split=split, fold=fold, n_folds=np.int64(folds), classes=np.array(ds.classes, dtype=str))
    arrays["task"] = np.array(ds.task)
    if ds.features is not None:
        arrays["features"] = np.array(ds.features, dtype=str)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(out, buf.getvalue())
    summary: dict[str, Any] = {
        "folds": folds,
        "source": ds.source,
        "task": ds.task,
        "task_rule": f"data.task {ds.decision.configured}: {ds.decision.reason}",
        "n_examples": int(len(ds.y)),
        "input_shape": list(ds.X.shape[1:]),
        "dtype": str(ds.X.dtype),
        "split": {SPLIT_NAMES[k]: int((split == k).sum()) for k in SPLIT_NAMES},
    }
    if folds > 1:  # no validation part: each fold in turn validates, the others train
        summary["split"] = {"cross-validated": int((split != TEST).sum()), "test": int((split == TEST).sum())}
        summary["fold_sizes"] = [int((fold == k).sum()) for k in range(folds)]
    if ds.task == REGRESSION:
        train = ds.y[split == TRAIN]
        summary["target"] = {  # trials standardise the target with their training rows' mean and std
            "mean": float(ds.y.mean()),
            "std": float(ds.y.std()),
            "min": float(ds.y.min()),
            "max": float(ds.y.max()),
            "train_mean": float(train.mean()),
            "train_std": float(train.std()),
        }
    else:
        summary["classes"] = ds.classes
        summary["class_counts"] = {ds.classes[c]: int(n) for c, n in enumerate(np.bincount(ds.y))}
    if ds.features is not None:
        summary["features"] = ds.features
    if ds.info:
        summary["images"] = ds.info
    return summary


@dataclass
class Prepared:
    X: np.ndarray
    y: np.ndarray  # int64 class index, or float64 target value (regression)
    split: np.ndarray  # TRAIN, VAL or TEST per example
    classes: list[str]  # empty for regression
    fold: np.ndarray | None = None  # cross-validation fold per example (-1 = test)
    n_folds: int = 1
    task: str = CLASSIFICATION  # classification | regression (a file without the array: classification)
    features: list[str] | None = None  # a CSV's feature columns

    @property
    def is_regression(self) -> bool:
        return self.task == REGRESSION

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
            evaluate = self.fold == fold
            if not evaluate.any():  # a file prepared before the fold array could hold every cv.folds
                raise DataError(
                    f"fold {fold} of {self.n_folds} has no examples; run prepare_data again (delete the prepared file)"
                )
            return (self.fold >= 0) & (self.fold != fold), evaluate
        return self.split == TRAIN, self.split == VAL


def load_prepared(path: str | Path) -> Prepared:
    with np.load(path, allow_pickle=False) as f:
        fold = f["fold"] if "fold" in f.files else None
        n_folds = int(f["n_folds"]) if "n_folds" in f.files else 1
        task = str(f["task"]) if "task" in f.files else CLASSIFICATION
        features = [str(c) for c in f["features"]] if "features" in f.files else None
        return Prepared(f["X"], f["y"], f["split"], [str(c) for c in f["classes"]], fold, n_folds, task, features)
