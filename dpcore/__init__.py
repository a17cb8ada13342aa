"""dpcore: the library behind DP Explorer: configs, privacy accounting, DP-SGD training, runs.

Rooms by concern, each importing only those below it (checked by import-linter, pyproject.toml):

    cli               python -m dpcore epsilon|calibrate|train|sweep|runs|export|audit
    export | views    what leaves the app (scripts, notebooks, share links, privacy reports, models) | what the pages draw
    runs              the run store, the fair queue and its backends, sweeps, estimates
    room              a shared server: participants, the host, settings, uploads
    audit             membership attacks and the canary audit of a trained model
    dpsgd             everything that imports TensorFlow: models, the DP step, the trainer
    data              datasets, CSV files and their schemas, splits, ScatterNet features
    privacy           ε by composing dp_accounting events, calibration, choosing among runs

The root holds what every room shares: the config (``config``) and a CSV run's schema
(``csv_schema``), the errors a person can cause (``errors``), reading untrusted input
(``safe_io``), which models fit which inputs (``model_specs``), a run's results and statuses
(``results``), the default folders on disk (``locations``), child interpreters (``child_process``)
and calls of library functions in them with a deadline (``child_calls``). It imports no room.
"""

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
