"""The TensorFlow side of dpcore: models, per-example gradients, the privatisation step, the trainer.

Everything outside this package reads configs, accounts, stores and explains without importing
TensorFlow. Importing any module here sets TensorFlow's C++ log level once and imports TensorFlow
with its start-up noise filtered out (``import_tensorflow_quietly``).

May import: data, privacy and the root. Never audit, runs, room or anything above.
"""

import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Lines TensorFlow 2.15 writes to the process's stderr while it loads, whatever TF_CPP_MIN_LOG_LEVEL
# says (XLA registers its CUDA plugins before the level applies): noise in a server's log.
STARTUP_NOISE = re.compile(
    r"Unable to register cu(DNN|FFT|BLAS) factory|oneDNN custom operations are on|"
    r"This TensorFlow binary is optimized|TF-TRT Warning|Could not find cuda drivers|cpu_feature_guard"
)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 caught, then pass on every caught line but the start-up noise.

    Lines other threads write to stderr meanwhile (a server's log) are passed on too, a moment late.
    """
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr: nothing to filter
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        kept = [
            line
            for line in caught.read().decode("utf-8", "replace").splitlines(keepends=True)
            if not STARTUP_NOISE.search(line)
        ]
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()


import_tensorflow_quietly()
