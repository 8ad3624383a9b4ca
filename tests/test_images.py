"""Image folders, the CNN family, augmentation and prediction from the saved model.

The images are drawn procedurally (tests/make_image_folder.py): the repository ships no photos
and downloads none.
"""

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO, Study
from make_image_folder import CLASSES, make_image_folder
from snaketune.data import TEST, load_prepared, prepare
from snaketune.errors import ConfigError, DataError
from snaketune.hparams import HParams
from snaketune.images import BYTES_PER_VALUE_IN_A_TRIAL, load_image, memory_needed, scan_folder
from snaketune.model import build_cnn, build_mlp, build_model
from snaketune.predict import load_model
from snaketune.train import TrialSettings, augment, evaluate, train


def images_cfg(path, **over):
    cfg = {
        "source": "images",
        "path": str(path),
        "image_size": [16, 16],
        "channels": 3,
        "skip_unreadable": False,
        "max_memory_mb": None,
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "seed": 0,
    }
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images") / "animals", n_per_class=30)


@pytest.fixture(scope="module")
def prepared(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "prepared.npz"
    summary = prepare(images_cfg(folder), out)
    return out, summary


def copy_folder(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "copy")


# --- the loader ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channels, size", [(3, (16, 16)), (1, (12, 20)), (3, (9, 31))])
def test_loader_sizes_channels_and_dtype(folder, tmp_path, channels, size):
    summary = prepare(images_cfg(folder, channels=channels, image_size=list(size)), tmp_path / "p.npz")
    p = load_prepared(tmp_path / "p.npz")
    assert p.X.dtype == np.uint8 and p.X.shape == (90, channels, *size) and p.is_images
    assert summary["input_shape"] == [channels, *size] and summary["dtype"] == "uint8"
    assert summary["images"]["decoded_images"] == 90 and summary["images"]["array_bytes"] == p.X.nbytes
    assert p.classes == list(CLASSES) and np.bincount(p.y).tolist() == [30, 30, 30]
    # The array holds exactly what load_image gives (the function predict uses): files sorted by path.
    first_stripes = sorted((folder / "stripes").iterdir())[0]
    assert np.array_equal(p.X[60], load_image(first_stripes, size, channels))


def test_class_order_is_by_name_and_stable(folder, tmp_path):
    # Created in another order, with a hidden folder and stray files: the same classes, same order.
    root = tmp_path / "shuffled"
    for name in reversed(CLASSES):
        shutil.copytree(folder / name, root / name)
    (root / ".ipynb_checkpoints").mkdir()
    (root / "notes.txt").write_text("not a class")
    (root / "circles" / "README.txt").write_text("not an image")
    (root / "circles" / ".DS_Store").write_bytes(b"\0")
    a = prepare(images_cfg(folder), tmp_path / "a.npz")
    b = prepare(images_cfg(root), tmp_path / "b.npz")
    assert a["classes"] == b["classes"] == list(CLASSES)
    assert b["images"]["ignored"] == ["circles/README.txt"]
    pa, pb = load_prepared(tmp_path / "a.npz"), load_prepared(tmp_path / "b.npz")
    assert np.array_equal(pa.X, pb.X) and np.array_equal(pa.y, pb.y) and np.array_equal(pa.split, pb.split)


def test_mixed_formats_modes_and_sizes_are_read(folder, tmp_path):
    files = [p for c in scan_folder(folder).files for p in c]
    assert {p.suffix for p in files} >= {".png", ".jpg", ".bmp"}
    sizes = {Image.open(p).size for p in files}
    modes = {Image.open(p).mode for p in files}
    assert len(sizes) > 10 and {"RGB", "L"} <= modes
    for p in files[:12]:
        assert load_image(p, (8, 10), 3).shape == (3, 8, 10) and load_image(p, (8, 10), 1).shape == (1, 8, 10)
    # A 16-bit grayscale PNG keeps its contrast (Pillow's own conversion to 8 bits would clip it to white).
    ramp = np.repeat(np.linspace(0, 65535, 32)[None], 8, axis=0).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    row = load_image(tmp_path / "ramp16.png", (8, 32), 1)[0, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0) and 100 < row[16] < 160
    assert np.array_equal(load_image(tmp_path / "ramp16.png", (8, 32), 3)[0], load_image(tmp_path / "ramp16.png", (8, 32), 1)[0])


def test_bad_folders_are_clear_errors(folder, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare(images_cfg(tmp_path / "nowhere"), tmp_path / "p.npz")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match="is a file"):
        prepare(images_cfg(tmp_path / "file.png"), tmp_path / "p.npz")

    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(sorted((folder / "circles").iterdir())[0], flat)
    with pytest.raises(DataError, match=r"has no sub-folders; put the images of each class in a sub-folder \(e.g. cats/"):
        prepare(images_cfg(flat), tmp_path / "p.npz")

    one = tmp_path / "one"
    shutil.copytree(folder / "circles", one / "circles")
    with pytest.raises(DataError, match=r"has one class folder \(circles/\); classification needs at least two"):
        prepare(images_cfg(one), tmp_path / "p.npz")

    empty = copy_folder(folder, tmp_path)
    (empty / "dogs").mkdir()
    (empty / "dogs" / "list.txt").write_text("")
    with pytest.raises(DataError, match=r"class folder .*dogs holds no images \(only 1 other file\(s\), e.g. list.txt\)"):
        prepare(images_cfg(empty), tmp_path / "p.npz")


def test_truncated_and_unreadable_files_are_named_or_skipped(folder, tmp_path):
    root = copy_folder(folder, tmp_path)
    jpg = sorted((root / "squares").glob("*.jpg"))[0]
    jpg.write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])  # truncated
    (root / "stripes" / "zz-not-an-image.png").write_text("hello")
    with pytest.raises(DataError) as err:
        prepare(images_cfg(root), tmp_path / "p.npz")
    msg = str(err.value)
    assert f"squares/{jpg.name}" in msg and "truncated" in msg and "stripes/zz-not-an-image.png" in msg
    assert "2 file(s) cannot be read" in msg and "data.skip_unreadable: true" in msg

    with pytest.warns(UserWarning, match="skipped unreadable image"):
        summary = prepare(images_cfg(root, skip_unreadable=True), tmp_path / "p.npz")
    assert summary["n_examples"] == 89 and summary["class_counts"] == {"circles": 30, "squares": 29, "stripes": 30}
    assert summary["images"]["skipped"] == [f"squares/{jpg.name}", "stripes/zz-not-an-image.png"]


def test_a_class_left_empty_by_skipping_is_an_error(folder, tmp_path):
    root = copy_folder(folder, tmp_path)
    (root / "broken").mkdir()
    (root / "broken" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"broken holds no readable images after skipping 1 unreadable"):
            prepare(images_cfg(root, skip_unreadable=True), tmp_path / "p.npz")


def test_too_large_for_memory_fails_before_decoding(folder, tmp_path):
    values, per_trial = memory_needed(1000, 3, (64, 64))
    assert values == 1000 * 3 * 64 * 64 and per_trial == values * BYTES_PER_VALUE_IN_A_TRIAL
    root = copy_folder(folder, tmp_path)
    (root / "circles" / "zz-truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # never decoded: memory fails first
    with pytest.raises(DataError) as err:
        prepare(images_cfg(root, image_size=[64, 64], max_memory_mb=1), tmp_path / "p.npz")
    msg = str(err.value)
    assert "91 images of 3x64x64 are 1 MB decoded (uint8)" in msg and "more than data.max_memory_mb (1): 1 MB" in msg
    assert "About 16 images of this size fit" in msg


# --- the CNN family -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, params, convs",
    [
        ((3, 16, 16), {}, [16, 32]),
        ((1, 12, 20), {"n_conv": 3, "channels": 4, "pool": "avg", "batch_norm": False}, [4, 8, 16]),
        ((3, 16, 16), {"n_conv": 4, "channels": 8, "channel_growth": 1.5, "kernel_size": 5, "n_layers": 0}, [8, 12, 18, 27]),
        ((3, 9, 7), {"n_conv": 2, "channels": 6, "channel_growth": 1, "pool": "none", "kernel_size": 1}, [6, 6]),
        ((3, 8, 8), {"n_conv": 0, "n_layers": 2, "hidden_units": 10, "dropout": 0.3}, []),
    ],
)
def test_cnn_output_shapes(shape, params, convs):
    hp = HParams(**params)
    hp.validate()
    model = build_model("cnn", shape, 5, hp)
    convolutions = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convolutions] == convs
    assert all(c.kernel_size == (hp.kernel_size,) * 2 for c in convolutions)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model) == (len(convs) if hp.batch_norm else 0)
    assert sum(isinstance(m, torch.nn.Linear) for m in model) == hp.n_layers + 1  # the MLP's dense head
    model.train()
    assert model(torch.randn(4, *shape)).shape == (4, 5)
    model.eval()
    assert model(torch.randn(1, *shape)).shape == (1, 5)


def test_cnn_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"cnn needs images shaped \(channels, height, width\).*shape \(64,\)"):
        build_cnn((64,), 3, HParams())
    with pytest.raises(ConfigError, match="block 3 would pool a 1x1 map of the 4x4 images below 1x1"):
        build_cnn((3, 4, 4), 3, HParams(n_conv=3))
    assert build_cnn((3, 4, 4), 3, HParams(n_conv=3, pool="none"))(torch.randn(2, 3, 4, 4)).shape == (2, 3)
    for bad, match in [
        ({"kernel_size": 4}, "odd"),
        ({"pool": "min"}, "max, avg, none"),
        ({"flip": 1.5}, "probability"),
        ({"crop_padding": -1}, ">= 0"),
        ({"channel_growth": 0}, "> 0"),
        ({"batch_norm": "yes"}, "true or false"),
    ]:
        with pytest.raises(ConfigError, match=match):
            HParams(**bad).validate()


def test_the_mlp_accepts_images_flattened():
    model = build_mlp((3, 8, 8), 4, HParams(n_layers=1, hidden_units=16))
    assert isinstance(model[0], torch.nn.Flatten) and model[1].in_features == 3 * 8 * 8
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4)


# --- augmentation -------------------------------------------------------------------------------


def test_augment_flips_and_crops_on_the_device_deterministically():
    x = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6)
    assert torch.equal(augment(x, 1.0, 0, torch.Generator().manual_seed(0)), x.flip(3))
    assert torch.equal(augment(x, 0.0, 0, torch.Generator().manual_seed(0)), x)
    assert HParams(flip=True).flip_probability == 0.5 and HParams(flip=False).flip_probability == 0.0

    p = 2
    out = augment(x, 0.0, p, torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for b in range(2):  # every image is a window of its zero-padded self
        windows = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if torch.equal(out[b], padded[b, :, dy : dy + 5, dx : dx + 6])
        ]
        assert windows, f"image {b} is not a crop of the padded image"
    again = augment(x, 0.5, p, torch.Generator().manual_seed(3))
    assert torch.equal(again, augment(x, 0.5, p, torch.Generator().manual_seed(3)))


def left_right_data(path, n=240, size=8, seed=0):
    """Class 0 = a bright blob in the left half, class 1 = in the right half (flipping swaps them)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 60, size=(n, 1, size, size)).astype(np.uint8)
    y = np.arange(n) % 2
    for i in range(n):
        col = rng.integers(0, size // 2 - 1) + (size // 2 if y[i] else 0)
        row = rng.integers(0, size - 1)
        X[i, 0, row : row + 2, col : col + 2] = 255
    split = np.zeros(n, dtype=np.int8)
    split[np.arange(n) % 5 == 3] = 1
    split[np.arange(n) % 5 == 4] = TEST
    np.savez(
        path,
        X=X,
        y=y,
        split=split,
        fold=np.where(split == TEST, -1, 0).astype(np.int8),
        n_folds=np.int64(1),
        classes=np.array(["left", "right"]),
    )
    return path


def run_trial(tmp_path, data, params, name, family="cnn", **kw):
    out = tmp_path / name
    out.mkdir()
    (out / "params.yaml").write_text(yaml.safe_dump(params))
    return train(TrialSettings(params=out / "params.yaml", out=out, data=data, family=family, patience=0, **kw))


def test_augmentation_applies_to_training_batches_only(tmp_path):
    """With every training image mirrored (flip: 1), a model that tells left from right learns the
    mirrored rule; validation images are not mirrored, so it is wrong on nearly all of them."""
    data = left_right_data(tmp_path / "lr.npz")
    base = {"lr": 0.01, "n_conv": 1, "channels": 4, "n_layers": 0, "batch_size": 16, "epochs": 15}
    # restore_best off: the reported accuracy is the last epoch's, not the best (chance-level) early one.
    plain = run_trial(tmp_path, data, {**base, "flip": 0.0}, "plain", seed=1, restore_best=False)
    mirrored = run_trial(tmp_path, data, {**base, "flip": 1.0}, "mirrored", seed=1, restore_best=False)
    assert plain["val_accuracy"] >= 0.9
    assert mirrored["val_accuracy"] <= 0.1
    mlp = run_trial(
        tmp_path,
        data,
        {"lr": 0.01, "n_layers": 1, "hidden_units": 16, "epochs": 15, "flip": 1.0},
        "mlp",
        family="mlp",
        seed=1,
        restore_best=False,
    )
    assert mlp["val_accuracy"] <= 0.1  # the MLP family augments images too (before flattening)


def test_image_trials_are_deterministic_and_resume_exactly(tmp_path, prepared):
    data, _ = prepared
    params = {
        "lr": 0.01,
        "n_conv": 2,
        "channels": 4,
        "batch_norm": True,
        "n_layers": 1,
        "hidden_units": 16,
        "dropout": 0.1,
        "batch_size": 16,
        "epochs": 5,
        "flip": 0.5,
        "crop_padding": 2,
    }
    a = run_trial(tmp_path, data, params, "a", seed=4)
    b = run_trial(tmp_path, data, params, "b", seed=4)
    assert a["val_loss"] == b["val_loss"] and a["train_loss"] == b["train_loss"]
    first = run_trial(tmp_path, data, params, "first", seed=4, budget=2)
    assert first["epochs_run"] == 2
    rest = run_trial(tmp_path, data, params, "rest", seed=4, resume=tmp_path / "first" / "checkpoint.pt")
    assert rest["epochs_this_run"] == 3 and rest["epochs_run"] == 5
    for key in ("val_loss", "val_accuracy", "train_loss", "best_epoch"):
        assert rest[key] == a[key], key


def test_cross_validation_folds_of_images(folder, tmp_path):
    prepare(images_cfg(folder), tmp_path / "cv.npz", folds=3)
    p = load_prepared(tmp_path / "cv.npz")
    train_rows, eval_rows = p.rows("search", fold=1)
    assert p.is_images and not (train_rows & eval_rows).any() and not (eval_rows & (p.split == TEST)).any()
    m = run_trial(tmp_path, tmp_path / "cv.npz", {"n_conv": 1, "channels": 4, "n_layers": 0, "epochs": 2}, "fold1", fold=1)
    assert 0 <= m["val_accuracy"] <= 1


# --- the saved model and prediction ------------------------------------------------------------


def test_prediction_round_trip_from_the_saved_model(tmp_path, prepared, folder):
    data, summary = prepared
    params = {
        "lr": 0.01,
        "n_conv": 2,
        "channels": 8,
        "n_layers": 1,
        "hidden_units": 32,
        "batch_size": 16,
        "epochs": 12,
        "flip": 0.5,
    }
    metrics = run_trial(tmp_path, data, params, "final", stage="final", seed=0)
    saved = torch.load(tmp_path / "final" / "model.pt", weights_only=True)
    assert saved["classes"] == list(CLASSES) and saved["input_shape"] == [3, 16, 16] and saved["family"] == "cnn"
    assert saved["image"] == {"size": [16, 16], "channels": 3, "scale": 1 / 255}
    assert saved["mean"].shape == saved["std"].shape == (3, 1, 1)  # per channel

    classifier = load_model(tmp_path / "final" / "model.pt")
    p = load_prepared(data)
    test_rows = np.flatnonzero(p.split == TEST)
    files = [f for c in scan_folder(folder).files for f in c]
    predictions = classifier.predict_files([files[i] for i in test_rows])
    # The files, loaded as predict loads them, give what the trainer measured on the prepared array.
    accuracy = np.mean([pr.label == p.classes[p.y[i]] for pr, i in zip(predictions, test_rows)])
    assert accuracy == pytest.approx(metrics["test_accuracy"])
    x = (torch.from_numpy(p.X[test_rows]).float() * saved["image"]["scale"] - saved["mean"]) / saved["std"]
    _, acc = evaluate(classifier.model, x, torch.from_numpy(p.y[test_rows]))
    assert acc == pytest.approx(metrics["test_accuracy"])

    # New images, never seen in training, classified from the command line as the README shows.
    fresh = make_image_folder(tmp_path / "fresh", n_per_class=5, seed=123)
    new = [fresh / c / f"{c}-{i:03d}.{ext}" for c in CLASSES for i, ext in [(0, "png"), (1, "jpg"), (2, "bmp")]]
    proc = subprocess.run(
        [sys.executable, "-m", "snaketune.predict", str(tmp_path / "final" / "model.pt"), *map(str, new)],
        capture_output=True, text=True, cwd=REPO, env={"PATH": ""}, check=True,
    )  # fmt: skip
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [line[0] for line in lines] == list(map(str, new))
    assert all(0 <= float(line[2]) <= 1 for line in lines)
    assert np.mean([line[1] == path.parent.name for line, path in zip(lines, new)]) >= 0.8

    bad = subprocess.run(
        [sys.executable, "-m", "snaketune.predict", str(tmp_path / "final" / "model.pt"), str(tmp_path / "missing.png")],
        capture_output=True, text=True, cwd=REPO, env={"PATH": ""},
    )  # fmt: skip
    assert bad.returncode == 2 and "image" in bad.stderr and "missing.png does not exist" in bad.stderr


def test_the_trainer_process_does_not_import_pillow():
    code = "import sys, snaketune.train; bad = {'PIL', 'sklearn', 'snakemake'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, env={})


# --- the example, end to end through the real CLI -----------------------------------------------


@pytest.mark.workflow
def test_animals_example_end_to_end_on_a_generated_folder(tmp_path):
    """config/examples/animals.yaml, shrunk (16x16 images, 3 trials, few epochs), on drawn classes."""
    make_image_folder(tmp_path / "photos", n_per_class=40)
    cfg = yaml.safe_load((REPO / "config" / "examples" / "animals.yaml").read_text())
    cfg["data"].update(path="photos", image_size=[16, 16])
    cfg["search"]["n_trials"] = 3
    cfg["search_space"].update(n_conv=[1, 2], channels=[4, 8], hidden_units=[16, 32], crop_padding=[0, 2], epochs=10)
    cfg["early_stopping"]["patience"] = 3
    s = Study(tmp_path, cfg, name="animals.yaml")
    s.run()

    table = s.table()
    assert len(table) == 3 and set(table["status"]) == {"ok"}
    assert {"n_conv", "channels", "flip", "crop_padding", "val_accuracy"} <= set(table.columns)
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    assert best["trial"] == table["trial"][0]
    final = json.loads((s.results / "final" / "metrics.json").read_text())
    assert final["test_accuracy"] >= 0.8, final  # chance is 1/3
    model = load_model(s.results / "final" / "model.pt")
    assert model.classes == list(CLASSES) and model.input_shape == [3, 16, 16]
    assert final["repeats"] == 3 and final["ensemble"] is True and len(model.members) == 3

    # Decoded once per study, by prepare_data; every trial loads the uint8 array.
    summary = json.loads((s.results / "data" / "summary.json").read_text())
    assert summary["images"]["decoded_images"] == 120 and summary["classes"] == list(CLASSES)
    prepare_log = (s.results / "logs" / "prepare_data.log").read_text()
    assert prepare_log.count("decoded 120 images in") == 1
    logs = [*(s.results / "trials").glob("*/train.log"), *(s.results / "final").glob("repeat-*/train.log")]
    assert len(logs) == 3 + 3  # the example's final stage: an ensemble of 3 retrains (the default)
    for log in logs:
        text = log.read_text()
        assert "examples of shape (3, 16, 16) (uint8) in" in text and "decod" not in text.lower()


def test_the_image_folder_script_has_a_help_and_writes_nothing_for_it(tmp_path, capsys, monkeypatch):
    from make_image_folder import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0 and "images_per_class" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # no folder named --help
    with pytest.raises(SystemExit):
        main(["out", "0"])
    assert main(["out", "2"]) == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(CLASSES)
