"""dpcore: the library behind DP Explorer: configs, privacy accounting, DP-SGD training, runs."""
from __future__ import annotations

import sys

if sys.version_info < (3, 9) or sys.version_info >= (3, 12):
    raise ImportError(
        f"DP Explorer needs Python 3.9, 3.10 or 3.11; this is Python "
        f"{sys.version_info.major}.{sys.version_info.minor}. TensorFlow Privacy 0.9.0 (its last "
        "release) imports only with TensorFlow <= 2.15, which has no wheels for Python 3.12 or newer."
    )

from dpcore.config import DPConfig  # noqa: E402
from dpcore.errors import ConfigError, DatasetError, UserInputError  # noqa: E402

__all__ = ["DPConfig", "ConfigError", "DatasetError", "UserInputError"]
__version__ = "0.1.0"
