"""Whether a built-in dataset can be loaded here without a download, checked without loading it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from dpcore import data


def dataset_problem(name: str) -> Optional[str]:
    """None when ``name`` is ready to load offline, else a plain message saying what is missing."""
    if name == "fashion_mnist":
        directories = [os.environ.get("DPEXPLORER_FASHION_MNIST_DIR", ""), *data.FASHION_MNIST_DIRS]
        for directory in filter(None, directories):
            if all(os.path.isfile(os.path.join(directory, f)) for f in data.IDX_FILES.values()):
                return None
        if _keras_cached("fashion-mnist"):
            return None
        return ("Fashion-MNIST is not installed on this machine: install the Debian package "
                "dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist) or set "
                "DPEXPLORER_FASHION_MNIST_DIR. ε can still be explored; training will fail.")
    if name == "mnist":
        if (Path.home() / ".keras" / "datasets" / "mnist.npz").is_file():
            return None
        return ("MNIST is not cached on this machine (~/.keras/datasets/mnist.npz): training needs "
                "one download. ε can still be explored; offline, use digits or fashion_mnist.")
    return None


def _keras_cached(folder: str) -> bool:
    path = Path.home() / ".keras" / "datasets" / folder
    return path.is_dir() and any(path.iterdir())
