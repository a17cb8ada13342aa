"""Offline availability of the built-in datasets, checked without loading them."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from dpcore import data
from dpcore.availability import dataset_problem


def test_digits_is_always_available() -> None:
    assert dataset_problem("digits") is None


def test_missing_fashion_mnist_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(data, "FASHION_MNIST_DIRS", (str(tmp_path / "none"),))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DPEXPLORER_FASHION_MNIST_DIR", raising=False)
    problem = dataset_problem("fashion_mnist")
    assert problem is not None and "dataset-fashion-mnist" in problem


def test_fashion_mnist_found_in_the_env_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in data.IDX_FILES.values():
        with gzip.open(tmp_path / name, "wb") as handle:
            handle.write(b"")
    monkeypatch.setattr(data, "FASHION_MNIST_DIRS", ())
    monkeypatch.setenv("DPEXPLORER_FASHION_MNIST_DIR", str(tmp_path))
    assert dataset_problem("fashion_mnist") is None


def test_mnist_needs_the_keras_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert "mnist.npz" in (dataset_problem("mnist") or "")
    (tmp_path / ".keras" / "datasets").mkdir(parents=True)
    (tmp_path / ".keras" / "datasets" / "mnist.npz").write_bytes(b"x")
    assert dataset_problem("mnist") is None
