"""Classify new images with a study's final model (``results/<study>/final/model.pt``).

From the command line (``python -m snaketune.predict`` is the same)::

    snaketune-predict results/animals/final/model.pt my-cat.jpg

prints one line per image: the file, the predicted class and its probability. In Python::

    from snaketune.predict import load_model

    model = load_model("results/animals/final/model.pt")
    for p in model.predict_files(["my-cat.jpg", "my-horse.png"]):
        print(p.path, p.label, round(p.probability, 3))

An image is loaded exactly as ``prepare_data`` loaded the training images (``snaketune.images.load_image``:
same mode, same size, same resampling), then normalised with the training images' statistics
stored in the model file. The final model of several retrains (``final.ensemble: true``) is an
:class:`Ensemble`: the mean of its members' probabilities.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snaketune.errors import DataError
from snaketune.hparams import HParams
from snaketune.model import build_model


@dataclass
class Prediction:
    path: str
    label: str  # the most probable class
    probability: float  # its probability
    probabilities: dict[str, float]  # every class, in the model's class order


class Predictor:
    """Raw inputs (feature rows, or image files) in, class probabilities out."""

    classes: list[str]
    input_shape: list[int]
    image: dict | None  # {"size": [h, w], "channels": c, "scale": 1/255} for an image model, else None

    def probabilities(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """(n, n_classes) probabilities for raw inputs: uint8 images (n, C, H, W) or feature rows (n, ...)."""
        raise NotImplementedError

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


@dataclass
class Classifier(Predictor):
    """One final model with what it needs to turn raw inputs into class probabilities."""

    model: torch.nn.Module
    classes: list[str]
    input_shape: list[int]
    mean: torch.Tensor
    std: torch.Tensor
    image: dict | None

    @torch.inference_mode()
    def probabilities(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        x = torch.as_tensor(np.asarray(x)).float()
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise DataError(f"inputs of shape {tuple(x.shape[1:])} given, but the model takes {tuple(self.input_shape)}")
        if self.image is not None:
            x = x * self.image["scale"]
        x = (x - self.mean) / self.std
        return torch.softmax(self.model(x), dim=1).numpy()


class Ensemble(Predictor):
    """Several final models of one configuration (retrained with different seeds) as one model:
    the mean of their class probabilities."""

    def __init__(self, members: Sequence[Classifier]) -> None:
        first = members[0]
        if any(m.classes != first.classes or list(m.input_shape) != list(first.input_shape) for m in members):
            raise DataError("the members of an ensemble must share their classes and input shape")
        self.members = list(members)
        self.classes, self.input_shape, self.image = first.classes, first.input_shape, first.image

    def probabilities(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        return np.mean([m.probabilities(x) for m in self.members], axis=0)


MODEL_FORMAT = "snaketune-model-1"
ENSEMBLE_FORMAT = "snaketune-ensemble-1"


def _classifier(payload: dict) -> Classifier:
    hp = HParams(**payload["hparams"])
    model = build_model(payload["family"], payload["input_shape"], len(payload["classes"]), hp)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return Classifier(
        model, list(payload["classes"]), list(payload["input_shape"]), payload["mean"], payload["std"], payload.get("image")
    )


def load_model(path: str | Path) -> Predictor:
    """Rebuild the network(s) of a ``model.pt`` written by the built-in trainer's final stage (on the CPU)."""
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise DataError(f"model file {path} does not exist (it is results/<study>/final/model.pt)") from None
    fmt = str(payload.get("format", "")) if isinstance(payload, dict) else ""
    if fmt == ENSEMBLE_FORMAT:
        return Ensemble([_classifier(m) for m in payload["members"]])
    if not fmt.startswith("snaketune-model-"):
        raise DataError(f"{path} is not a snaketune model file (results/<study>/final/model.pt)")
    return _classifier(payload)


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
        description="Classify image files with a study's final model; prints: file, class, probability.",
    )
    parser.add_argument("model", help="the model file, results/<study>/final/model.pt")
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, WebP ...)")
    parser.add_argument("--all", action="store_true", help="also print every class's probability")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        classifier = load_model(args.model)
        predictions = classifier.predict_files(args.images)
    except DataError as e:
        print(f"snaketune.predict: {e}", file=sys.stderr)
        return 2
    for p in predictions:
        extra = "\t" + " ".join(f"{c}={v:.4f}" for c, v in p.probabilities.items()) if args.all else ""
        print(f"{p.path}\t{p.label}\t{p.probability:.4f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
