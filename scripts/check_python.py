"""Fail early, with the reason, on a Python that TensorFlow Privacy 0.9.0 cannot run on."""

import sys

if not (3, 9) <= sys.version_info[:2] <= (3, 11):
    sys.exit(
        f"DP Explorer needs Python 3.9, 3.10 or 3.11, but {sys.executable} is "
        f"{sys.version_info.major}.{sys.version_info.minor}.\n"
        "TensorFlow Privacy 0.9.0 (its last release) imports only with TensorFlow <= 2.15, and "
        "TensorFlow 2.15 has no wheels for Python 3.12 or newer.\n"
        "Install Python 3.11 and run again, e.g. `make run PYTHON=python3.11`."
    )
