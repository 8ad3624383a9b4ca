"""Predict with a study's final model (``results/<study>/final/model.pt``): classes or values.

From the command line (``python -m snaketune.predict`` is the same)::

    snaketune-predict results/animals/final/model.pt my-cat.jpg
    snaketune-predict results/my-regression/final/model.pt new-rows.csv

prints one line per image (the file, the predicted class and its probability) or per row of a
CSV or .npz file of feature vectors (``<file>:<line>`` and the predicted class and probability,
or for a regression model the predicted value, on the target's own scale). In Python::

    from snaketune.predict import load_model

    model = load_model("results/animals/final/model.pt")
    for p in model.predict_files(["my-cat.jpg", "my-horse.png"]):
        print(p.path, p.label, round(p.probability, 3))

    model = load_model("results/my-regression/final/model.pt")   # a Regressor (or an Ensemble of them)
    values = model.predict(model.load_table("new-rows.csv")[0])  # numpy array, one value per row

An image is loaded exactly as ``prepare_data`` loaded the training images (``snaketune.images.load_image``:
same mode, same size, same resampling), then normalised with the training images' statistics
stored in the model file; feature rows are standardised with the training rows' statistics, and a
regression network's output is turned back into the target's scale with the training rows' mean
and std of the target. The final model of several retrains (``final.ensemble: true``) is an
:class:`Ensemble`: the mean of its members' probabilities, or of their predicted values.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snaketune.errors import DataError
from snaketune.hparams import HParams
from snaketune.model import build_model
from snaketune.task import CLASSIFICATION, REGRESSION


@dataclass
class Prediction:
    path: str
    label: str  # the most probable class
    probability: float  # its probability
    probabilities: dict[str, float]  # every class, in the model's class order


class Predictor:
    """Raw inputs (feature rows, or image files) in; class probabilities (:class:`Classifier`) or
    values on the target's scale (:class:`Regressor`) out."""

    classes: list[str]  # empty for regression
    input_shape: list[int]
    image: dict | None  # {"size": [h, w], "channels": c, "scale": 1/255} for an image model, else None
    task: str = CLASSIFICATION  # classification | regression
    features: list[str] | None = None  # the CSV feature columns it was trained on, in order (None: unnamed)

    def probabilities(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """(n, n_classes) probabilities for raw inputs: uint8 images (n, C, H, W) or feature rows (n, ...)."""
        raise DataError("this is a regression model: it predicts values (predict()), not class probabilities")

    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """One prediction per raw input: the most probable class's name, or (regression) the value."""
        if self.task == REGRESSION:
            raise NotImplementedError
        return np.asarray(self.classes, dtype=object)[self.probabilities(x).argmax(axis=1)]

    def load_table(self, path: str | Path) -> tuple[np.ndarray, list[str]]:
        """Feature rows to predict and a name for each (``file:line``, ``file[row]``), from a CSV file
        (a header line, then one row per example; the model's feature columns are taken by name and
        any other column, such as the label, is ignored) or an .npz file (array ``X``)."""
        from snaketune.data import _check_data_file, _check_features

        if self.image is not None:
            raise DataError("this model was trained on images; give it image files (predict_files)")
        path = str(path)
        _check_data_file(path, "npz" if path.endswith(".npz") else "csv")
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as f:
                if "X" not in f.files:
                    raise DataError(f"{path}: no array X (it holds {', '.join(f.files) or 'nothing'})")
                X = _check_features(f["X"], path)
            names = [f"{path}[{i}]" for i in range(len(X))]
        else:
            import pandas as pd

            try:
                df = pd.read_csv(path)
            except Exception as e:
                raise DataError(f"cannot read {path} as CSV: {e}") from None
            if self.features is not None:
                missing = [c for c in self.features if c not in df.columns]
                if missing:
                    raise DataError(
                        f"{path} lacks the feature column(s) {', '.join(map(repr, missing))} the model was trained on; "
                        f"it needs {', '.join(self.features)} (other columns are ignored)"
                    )
                df = df[self.features]
            try:
                values = df.to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise DataError(f"{path}: the feature columns must be numeric ({e})") from None
            X = _check_features(values, path, [str(c) for c in df.columns], first_line=2)
            names = [f"{path}:{i + 2}" for i in range(len(X))]
        if tuple(X.shape[1:]) != tuple(self.input_shape):
            raise DataError(f"{path}: rows of shape {tuple(X.shape[1:])}, but the model takes {tuple(self.input_shape)}")
        return X, names

    def load_images(self, paths: Sequence[str | Path]) -> np.ndarray:
        """Image files as the uint8 array the model was trained on (n, C, H, W)."""
        from snaketune.images import load_image

        if self.image is None:
            raise DataError("this model was trained on feature vectors, not images; call probabilities() with feature rows")
        out = np.empty((len(paths), *self.input_shape), dtype=np.uint8)
        for i, p in enumerate(paths):
            try:
                out[i] = load_image(p, self.image["size"], self.image["channels"])
            except FileNotFoundError:
                raise DataError(f"image {p} does not exist") from None
            except (OSError, ValueError, SyntaxError) as e:
                raise DataError(f"cannot read {p} as an image: {e}") from None
        return out

    def predict_files(self, paths: Sequence[str | Path]) -> list[Prediction]:
        probs = self.probabilities(self.load_images(paths))
        out = []
        for p, row in zip(paths, probs):
            k = int(row.argmax())
            out.append(Prediction(str(p), self.classes[k], float(row[k]), dict(zip(self.classes, map(float, row)))))
        return out


def _network_input(x: np.ndarray | torch.Tensor, input_shape, image: dict | None, mean, std) -> torch.Tensor:
    """Raw inputs normalised as the trainer normalised its training rows."""
    x = torch.as_tensor(np.asarray(x)).float()
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(f"inputs of shape {tuple(x.shape[1:])} given, but the model takes {tuple(input_shape)}")
    if image is not None:
        x = x * image["scale"]
    return (x - mean) / std


@dataclass
class Classifier(Predictor):
    """One final model with what it needs to turn raw inputs into class probabilities."""

    model: torch.nn.Module
    classes: list[str]
    input_shape: list[int]
    mean: torch.Tensor
    std: torch.Tensor
    image: dict | None
    features: list[str] | None = None

    @torch.inference_mode()
    def probabilities(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        x = _network_input(x, self.input_shape, self.image, self.mean, self.std)
        return torch.softmax(self.model(x), dim=1).numpy()


@dataclass
class Regressor(Predictor):
    """One final regression model: raw inputs in, values on the target's own scale out."""

    model: torch.nn.Module
    input_shape: list[int]
    mean: torch.Tensor
    std: torch.Tensor
    image: dict | None
    target_mean: float  # the training rows' target statistics: output * target_std + target_mean
    target_std: float
    features: list[str] | None = None
    classes: list[str] = dataclasses.field(default_factory=list)
    task: str = REGRESSION

    @torch.inference_mode()
    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """(n,) predicted values (float64), on the scale of the target the model was trained on."""
        x = _network_input(x, self.input_shape, self.image, self.mean, self.std)
        return self.model(x).squeeze(1).double().numpy() * self.target_std + self.target_mean


class Ensemble(Predictor):
    """Several final models of one configuration (retrained with different seeds) as one model:
    the mean of their class probabilities, or (regression) of their predicted values."""

    def __init__(self, members: Sequence[Classifier | Regressor]) -> None:
        first = members[0]
        if any(
            m.task != first.task or m.classes != first.classes or list(m.input_shape) != list(first.input_shape) for m in members
        ):
            raise DataError("the members of an ensemble must share their task, classes and input shape")
        self.members = list(members)
        self.classes, self.input_shape, self.image = first.classes, first.input_shape, first.image
        self.task, self.features = first.task, first.features

    @property
    def target_std(self) -> float:
        """Regression: the members' target std (the same training rows, so the same value): the scale of ``loss``."""
        return self.members[0].target_std

    def probabilities(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        if self.task == REGRESSION:
            return super().probabilities(x)
        return np.mean([m.probabilities(x) for m in self.members], axis=0)

    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        if self.task == REGRESSION:
            return np.mean([m.predict(x) for m in self.members], axis=0)
        return super().predict(x)


MODEL_FORMAT = "snaketune-model-1"
ENSEMBLE_FORMAT = "snaketune-ensemble-1"


def _member(payload: dict) -> Classifier | Regressor:
    """The network of one model file's payload (a file without ``task`` is a classifier)."""
    hp = HParams(**payload["hparams"])
    regression = payload.get("task", CLASSIFICATION) == REGRESSION
    n_outputs = 1 if regression else len(payload["classes"])
    model = build_model(payload["family"], payload["input_shape"], n_outputs, hp)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    shape, image, features = list(payload["input_shape"]), payload.get("image"), payload.get("features")
    if regression:
        target = payload["target"]
        return Regressor(
            model, shape, payload["mean"], payload["std"], image, float(target["mean"]), float(target["std"]), features
        )
    return Classifier(model, list(payload["classes"]), shape, payload["mean"], payload["std"], image, features)


def load_model(path: str | Path) -> Predictor:
    """Rebuild the network(s) of a ``model.pt`` written by the built-in trainer's final stage (on the CPU)."""
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise DataError(f"model file {path} does not exist (it is results/<study>/final/model.pt)") from None
    fmt = str(payload.get("format", "")) if isinstance(payload, dict) else ""
    if fmt == ENSEMBLE_FORMAT:
        return Ensemble([_member(m) for m in payload["members"]])
    if not fmt.startswith("snaketune-model-"):
        raise DataError(f"{path} is not a snaketune model file (results/<study>/final/model.pt)")
    return _member(payload)


def save_ensemble(path: str | Path, members: Sequence[str | Path]) -> None:
    """One model file holding the final models ``members`` (files of the built-in trainer)."""
    import io

    from snaketune.files import atomic_write_bytes

    payloads = [torch.load(m, weights_only=True, map_location="cpu") for m in members]
    buf = io.BytesIO()
    torch.save({"format": ENSEMBLE_FORMAT, "members": payloads}, buf)
    atomic_write_bytes(path, buf.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="snaketune-predict",
        description=(
            "Predict with a study's final model. Image models: one line per image file (file, class, probability). "
            "Feature-vector models: one line per row of CSV or .npz files (file:line, then the class and its "
            "probability, or a regression model's value)."
        ),
    )
    parser.add_argument("model", help="the model file, results/<study>/final/model.pt")
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="file",
        help="image files (PNG, JPEG, BMP, WebP ...), or CSV files (a header line; the model's feature columns, "
        "by name for a model trained on a CSV) or .npz files (array X) of feature rows",
    )
    parser.add_argument("--all", action="store_true", help="also print every class's probability")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lines = []
    try:
        predictor = load_model(args.model)
        if predictor.image is not None:
            predictions = predictor.predict_files(args.inputs)
        else:
            predictions = []
            for path in args.inputs:
                X, names = predictor.load_table(path)
                if predictor.task == REGRESSION:
                    lines += [f"{name}\t{value:.6g}" for name, value in zip(names, predictor.predict(X))]
                    continue
                for name, row in zip(names, predictor.probabilities(X)):
                    k = int(row.argmax())
                    predictions.append(
                        Prediction(name, predictor.classes[k], float(row[k]), dict(zip(predictor.classes, map(float, row))))
                    )
    except DataError as e:
        print(f"snaketune.predict: {e}", file=sys.stderr)
        return 2
    for p in predictions:
        extra = "\t" + " ".join(f"{c}={v:.4f}" for c, v in p.probabilities.items()) if args.all else ""
        lines.append(f"{p.path}\t{p.label}\t{p.probability:.4f}{extra}")
    if lines:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
