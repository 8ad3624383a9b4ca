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
    with pytest.raises(DataError, match="'colour' are not numeric"):
        load_source(data_cfg(source="csv", path=str(bad)))
    nan = tmp_path / "nan.csv"
    nan.write_text("f1,f2,label\n1.0,2.0,0\n1.0,,1\n")
    with pytest.raises(DataError, match=r"nan.csv: 1 NaN or infinite value\(s\), the first in row 1, column 'f2'"):
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
