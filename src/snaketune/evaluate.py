"""The final model on the test set: its scores (an ensemble's), and for the report a confusion
matrix (classification) or its predicted against the true values (regression).

The model is applied exactly as ``snaketune.predict`` applies it (the trainer's normalisation,
stored in ``model.pt``), to the test part of the prepared data that the final stage evaluated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from snaketune.data import TEST, load_prepared

CHUNK = 4096  # test rows per forward pass


@dataclass
class Confusion:
    matrix: np.ndarray  # (n_classes, n_classes): rows = true class, columns = predicted class
    classes: list[str]

    @property
    def accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")


def test_probabilities(model_path: str | os.PathLike, data_path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(class names, (n, n_classes) probabilities, true class indices) of the final model on every
    test example of the prepared data."""
    import torch

    from snaketune.predict import load_model

    torch.set_num_threads(1)
    predictor = load_model(model_path)
    prepared = load_prepared(data_path)
    rows = prepared.split == TEST
    X, y = prepared.X[rows], prepared.y[rows].astype(np.int64)
    n = len(predictor.classes)
    chunks = [predictor.probabilities(X[i : i + CHUNK]) for i in range(0, len(X), CHUNK)]
    return list(predictor.classes), (np.concatenate(chunks) if chunks else np.zeros((0, n))), y


test_probabilities.__test__ = False  # a function named test_*, not a test


def confusion_on_test_set(model_path: str | os.PathLike, data_path: str | os.PathLike) -> Confusion:
    """Predict every test example with the final model and count (true, predicted) pairs."""
    classes, p, y = test_probabilities(model_path, data_path)
    n = len(classes)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y, p.argmax(axis=1).astype(np.int64)), 1)
    return Confusion(matrix, classes)


def test_predictions(model_path: str | os.PathLike, data_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, float]:
    """A regression model's (predicted, true) values of every test example, on the target's scale, and
    the target std it was trained with (the scale of its ``loss``)."""
    import torch

    from snaketune.predict import load_model

    torch.set_num_threads(1)
    predictor = load_model(model_path)
    prepared = load_prepared(data_path)
    rows = prepared.split == TEST
    X, y = prepared.X[rows], prepared.y[rows].astype(np.float64)
    chunks = [predictor.predict(X[i : i + CHUNK]) for i in range(0, len(X), CHUNK)]
    return (np.concatenate(chunks) if chunks else np.zeros(0)), y, float(predictor.target_std)


test_predictions.__test__ = False  # a function named test_*, not a test


def test_scores(model_path: str | os.PathLike, data_path: str | os.PathLike) -> dict[str, float]:
    """The test metrics of a final model file on the test part, named as the trainer names them:
    ``test_accuracy`` and ``test_loss`` (mean cross-entropy), or for regression ``test_rmse``,
    ``test_mae``, ``test_r2`` and ``test_loss`` (:func:`snaketune.task.regression_metrics`)."""
    if load_prepared(data_path).is_regression:
        from snaketune.task import regression_metrics

        predicted, y, scale = test_predictions(model_path, data_path)
        return {f"test_{k}": v for k, v in regression_metrics(predicted, y, scale).items()}
    _, p, y = test_probabilities(model_path, data_path)
    chosen = np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)
    return {"test_accuracy": float((p.argmax(axis=1) == y).mean()), "test_loss": float(-np.log(chosen).mean())}


test_scores.__test__ = False  # a function named test_*, not a test
