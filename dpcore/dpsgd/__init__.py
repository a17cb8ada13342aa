"""The TensorFlow side of dpcore: models, per-example gradients, the privatisation step, the trainer.

Everything outside this package reads configs, accounts, stores and explains without importing
TensorFlow. Importing any module here sets TensorFlow's C++ log level once, before TensorFlow loads.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
