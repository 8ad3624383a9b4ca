"""Data sources, checks and the stratified split every trial shares."""

import numpy as np
import pytest

from snaketune.data import TEST, TRAIN, VAL, load_prepared, load_source, prepare, stratified_split
from snaketune.errors import DataError


def data_cfg(**over):
    cfg = {
        "source": "synthetic",
        "path": None,
        "label_column": "label",
        "n_samples": None,
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "seed": 0,
    }
    cfg.update(over)
    return cfg


def test_split_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    split = stratified_split(y, 0.2, 0.25, seed=1)
    assert set(np.unique(split)) == {TRAIN, VAL, TEST}
    for c, n in enumerate([100, 50, 30, 20]):
        part = split[y == c]
        assert (part == TEST).sum() == round(n * 0.25)
        assert (part == VAL).sum() == round(n * 0.2)
    assert np.array_equal(split, stratified_split(y, 0.2, 0.25, seed=1))
    assert not np.array_equal(split, stratified_split(y, 0.2, 0.25, seed=2))


def test_split_names_a_class_too_small():
    y = np.array([0] * 50 + [1] * 2)
    with pytest.raises(DataError, match="class 'b' has 2 example"):
        stratified_split(y, 0.2, 0.2, 0, classes=["a", "b"])


def test_single_class_is_an_error():
    with pytest.raises(DataError, match="single class"):
        stratified_split(np.zeros(30, dtype=np.int64), 0.2, 0.2, 0)


@pytest.mark.parametrize("source", ["synthetic", "digits", "mnist1d"])
def test_builtin_sources_prepare_and_load(tmp_path, source):
    out = tmp_path / "prepared.npz"
    summary = prepare(data_cfg(source=source, n_samples=600 if source == "mnist1d" else None), out)
    p = load_prepared(out)
    assert p.X.dtype == np.float32 and len(p.X) == len(p.y) == summary["n_examples"]
    assert sum(summary["split"].values()) == summary["n_examples"]
    assert len(p.classes) == len(summary["classes"]) >= 3
    if source == "digits":
        assert p.X.shape == (1797, 64) and len(p.classes) == 10


def test_digits_read_from_scikit_learns_file_are_what_load_digits_returns(tmp_path, monkeypatch):
    """The digits are read from scikit-learn's own file without importing it; the arrays must be
    load_digits' to the last pixel, and a file that is missing or not the digits falls back to it."""
    from sklearn.datasets import load_digits

    from snaketune import data

    expected = load_digits()
    path = data.digits_file()
    assert path is not None, "scikit-learn's digits.csv.gz moved: load_digits_source now imports scikit-learn"
    pixels, digits = data.read_digits_file(path)
    assert np.array_equal(pixels, expected.data) and np.array_equal(digits, expected.target)
    ds = data.load_digits_source()
    assert np.array_equal(ds.X, expected.data.astype(np.float32)) and np.array_equal(ds.y, expected.target)
    assert ds.classes == [str(c) for c in expected.target_names]

    short = tmp_path / "digits.csv.gz"
    import gzip

    with gzip.open(short, "wt") as fh:
        fh.write("1,2,3\n")
    assert data.read_digits_file(short) is None
    (tmp_path / "garbage.csv.gz").write_bytes(b"not gzip")
    assert data.read_digits_file(tmp_path / "garbage.csv.gz") is None
    monkeypatch.setattr(data, "digits_file", lambda: short)
    fallback = data.load_digits_source()
    assert np.array_equal(fallback.X, ds.X) and np.array_equal(fallback.y, ds.y) and fallback.classes == ds.classes


def test_csv_source_and_its_errors(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.csv"
    rows = ["f1,f2,species"] + [f"{rng.normal()},{rng.normal()},{'cat' if i % 2 else 'dog'}" for i in range(60)]
    path.write_text("\n".join(rows) + "\n")
    ds = load_source(data_cfg(source="csv", path=str(path), label_column="species"))
    assert ds.X.shape == (60, 2) and ds.classes == ["cat", "dog"]

    with pytest.raises(DataError, match=r"no label column 'specie'.*did you mean `species`"):
        load_source(data_cfg(source="csv", path=str(path), label_column="specie"))
    bad = tmp_path / "bad.csv"
    bad.write_text("f1,colour,label\n1.0,red,0\n2.0,blue,1\n")
    with pytest.raises(DataError, match="column 'colour' is not numeric: line 2 holds 'red'"):
        load_source(data_cfg(source="csv", path=str(bad)))
    nan = tmp_path / "nan.csv"
    nan.write_text("f1,f2,label\n1.0,2.0,0\n1.0,,1\n")
    with pytest.raises(DataError, match=r"nan.csv: 1 NaN or infinite value\(s\), the first on line 3, column 'f2'"):
        load_source(data_cfg(source="csv", path=str(nan)))
    with pytest.raises(DataError, match="does not exist"):
        load_source(data_cfg(source="csv", path=str(tmp_path / "missing.csv")))


def test_npz_source_and_its_errors(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, X=np.random.default_rng(0).normal(size=(40, 3, 2)), y=np.arange(40) % 4)
    ds = load_source(data_cfg(source="npz", path=str(good)))
    assert ds.X.shape == (40, 3, 2) and len(ds.classes) == 4
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, features=np.zeros((3, 2)))
    with pytest.raises(DataError, match="missing array"):
        load_source(data_cfg(source="npz", path=str(wrong)))
    inf = tmp_path / "inf.npz"
    np.savez(inf, X=np.array([[1.0], [np.inf]]), y=np.array([0, 1]))
    with pytest.raises(DataError, match="NaN or infinite"):
        load_source(data_cfg(source="npz", path=str(inf)))


# -- every malformed file is an error naming the file, the column or array, and what would be valid ----


def _csv(text):
    return lambda path: path.write_text(text)


def _npz(**arrays):
    return lambda path: np.savez(path, **arrays)


def _bytes(data):
    return lambda path: path.write_bytes(data)


FEATURES = np.random.default_rng(0).normal(size=(40, 3))
LABELS = np.arange(40) % 2
BAD_FILES = {
    # csv
    "a header-only csv": ("csv", _csv("f1,f2,label\n"), "has a header line but no examples"),
    "an empty csv": ("csv", _csv(""), "is empty; a CSV needs a header line"),
    "a csv folder": ("csv", lambda p: p.mkdir(), "is a folder, but data.source: csv reads one .csv file"),
    "a missing csv": ("csv", lambda p: None, "does not exist (data.path)"),
    "text in a feature": (
        "csv",
        _csv("f1,colour,size,label\n1,2,3,a\n2,red,s,b\n"),
        "column 'colour' is not numeric: line 3 holds 'red' (also not numeric: 'size')",
    ),
    "True/False with an empty cell": (
        "csv",
        _csv("f1,flag,label\n1,True,a\n2,,b\n"),
        "column 'flag' holds True/False with empty cells, the first on line 3",
    ),
    "an empty label": (
        "csv",
        _csv("f1,label\n1,a\n2,b\n3,\n"),
        "column 'label' has 1 empty or missing label(s) (cells such as '', NA or NaN), the first on line 4",
    ),
    "a missing label column": ("csv", _csv("f1,lable\n1,a\n"), "no label column 'label' (did you mean `lable`?)"),
    "only a label column": ("csv", _csv("label\na\nb\n"), "no feature columns besides 'label'"),
    "an infinite feature": (
        "csv",
        _csv("f1,f2,label\n1,2,a\n1,inf,b\n"),
        "1 NaN or infinite value(s), the first on line 3, column 'f2'",
    ),
    "a feature beyond float32": (
        "csv",
        _csv("f1,f2,label\n1,2,a\n1,1e300,b\n"),
        "beyond float32's range (about ±3.4e38), the first on line 3, column 'f2'",
    ),
    # npz
    "a zero-row npz": ("npz", _npz(X=np.zeros((0, 3)), y=np.zeros(0)), "X and y have no rows"),
    "a 0-d X": (
        "npz",
        _npz(X=np.float64(1.0), y=LABELS),
        "X must hold one row per example, shape (examples, features) or (examples, channels, height, width), but has shape ()",
    ),
    "a 1-D X": (
        "npz",
        _npz(X=np.arange(40.0), y=LABELS),
        "but has shape (40,) (for one feature per example, save X.reshape(-1, 1))",
    ),
    "an X without features": ("npz", _npz(X=np.zeros((40, 0)), y=LABELS), "X has shape (40, 0), no features per example"),
    "a column vector y": (
        "npz",
        _npz(X=FEATURES, y=LABELS[:, None]),
        "y must be one-dimensional (one class label per example), but has shape (40, 1) (save y.ravel())",
    ),
    "X and y of different lengths": ("npz", _npz(X=FEATURES, y=LABELS[:39]), "X has 40 rows but y has 39 labels"),
    "an object X": (
        "npz",
        _npz(X=np.array([[1.0], [1.0, 2.0]], dtype=object), y=LABELS[:2]),
        "array X holds Python objects (dtype object",
    ),
    "an object y": (
        "npz",
        _npz(X=FEATURES, y=np.array(["a", 1] * 20, dtype=object)),
        "array y holds Python objects (dtype object",
    ),
    "a text X": (
        "npz",
        _npz(X=np.array([["a", "b"]] * 40), y=LABELS),
        "features must be numeric (integers, floats or booleans), but have dtype <U1",
    ),
    "NaN in an image-shaped X": (
        "npz",
        _npz(X=np.where(np.arange(4) == 2, np.nan, 1.0).reshape(2, 2) + np.zeros((40, 1, 1)), y=LABELS),
        "the first in row 0, feature (1, 0)",
    ),
    "NaN labels": ("npz", _npz(X=FEATURES, y=np.where(LABELS == 1, np.nan, 0.0)), "the labels contain NaN or infinite values"),
    "a pickle": ("npz", _bytes(b"\x80\x04\x95" + b"\0" * 20), "holds pickled Python objects, which snaketune never loads"),
    "a .npy array": (
        "npz",
        lambda p: np.save(open(p, "wb"), FEATURES),
        "holds one array of shape (40, 3) (a .npy file), not an .npz archive",
    ),
    "a csv named .npz": (
        "npz",
        _csv("f1,label\n1,a\n"),
        "holds neither an .npz archive nor a .npy array (it starts with b'f1,label",
    ),
    "an npz without y": ("npz", _npz(X=FEATURES), "missing array(s) y; it holds X"),
    "an npz folder": ("npz", lambda p: p.mkdir(), "is a folder, but data.source: npz reads one .npz file"),
}


@pytest.mark.parametrize("source, write, fragment", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_malformed_data_file_is_an_error_naming_it(tmp_path, source, write, fragment):
    path = tmp_path / f"data.{source}"
    write(path)
    with pytest.raises(DataError) as e:
        load_source(data_cfg(source=source, path=str(path)))
    assert fragment in str(e.value)
    assert str(path) in str(e.value)  # which file: the one data.path names


def test_true_false_columns_are_ones_and_zeros(tmp_path):
    path = tmp_path / "flags.csv"
    path.write_text("f1,flag,label\n0.5,True,a\n1.5,False,b\n")
    ds = load_source(data_cfg(source="csv", path=str(path)))
    assert ds.X.tolist() == [[0.5, 1.0], [1.5, 0.0]] and ds.classes == ["a", "b"]


@pytest.mark.parametrize(
    "labels, fragment",
    [
        ([0] * 40, "single class ('0', 40 examples); classification needs at least two (is data.label_column the class?)"),
        (list(range(40)), "the data has 40 classes in 40 examples: is data.label_column a class label?"),
    ],
)
def test_labels_that_are_not_classes_are_named_in_prepare(tmp_path, labels, fragment):
    path = tmp_path / "d.npz"
    np.savez(path, X=FEATURES, y=np.array(labels))
    # As classes: data.task auto would read 40 distinct whole numbers, each once, as regression (test_task.py).
    with pytest.raises(DataError) as e:
        prepare(data_cfg(source="npz", path=str(path), task="classification"), tmp_path / "prepared.npz")
    assert str(e.value).startswith(f"{path}: ") and fragment in str(e.value)
