"""Render a DPConfig as a standalone, commented Python script that uses TensorFlow Privacy's public API."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dpcore.errors import ConfigError
from dpcore.noise import schedule_of

if TYPE_CHECKING:
    from dpcore.config import DPConfig

_DATA = {
    "digits": '''
def load_data():
    """scikit-learn's bundled 8x8 digits: a stratified 80/20 split with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0)
    return (x_train, y_train), (x_test, y_test), 10
''',
    "fashion_mnist": '''
def load_data():
    """Fashion-MNIST: Debian's dataset-fashion-mnist files if present, else the Keras loader."""
    import gzip, os
    folder = "/usr/share/datasets/fashion-mnist"

    def idx(name):
        for candidate in (name, name + ".gz"):
            path = os.path.join(folder, candidate)
            if os.path.exists(path):
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rb") as handle:
                    data = handle.read()
                dims = data[3]
                shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
                return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
        return None

    x_train = idx("train-images-idx3-ubyte")
    if x_train is not None:
        y_train, x_test, y_test = (idx("train-labels-idx1-ubyte"), idx("t10k-images-idx3-ubyte"),
                                   idx("t10k-labels-idx1-ubyte"))
    else:
        (x_train, y_train), (x_test, y_test) = tf.keras.datasets.fashion_mnist.load_data()
    prepare = lambda images: (images.astype("float32") / 255.0)[..., None]
    return (prepare(x_train), y_train.astype("int64")), (prepare(x_test), y_test.astype("int64")), 10
''',
    "mnist": '''
def load_data():
    """MNIST through the Keras loader (downloads once, then reads its cache)."""
    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    prepare = lambda images: (images.astype("float32") / 255.0)[..., None]
    return (prepare(x_train), y_train.astype("int64")), (prepare(x_test), y_test.astype("int64")), 10
''',
    "csv": '''
def load_data():
    """Your CSV: numeric columns standardised, text columns one-hot encoded, fitted on train data only.

    Missing numbers are replaced by the training mean; missing categories become their own category.
    """
    import pandas as pd
    from sklearn.model_selection import train_test_split
    frame = pd.read_csv(CSV_PATH)
    labels, classes = pd.factorize(frame.pop(CSV_LABEL).astype(str), sort=True)
    train, test, y_train, y_test = train_test_split(
        frame, labels, test_size=0.2, stratify=labels, random_state=0)
    numeric = [c for c in train.columns if pd.api.types.is_numeric_dtype(train[c])]
    mean, std = train[numeric].mean(), train[numeric].std().replace(0, 1).fillna(1)

    def encode(part):
        numbers = ((part[numeric].fillna(mean) - mean) / std).fillna(0.0)
        text = part.drop(columns=numeric).astype(str).fillna("missing")
        return numbers, text

    train_numbers, train_text = encode(train)
    test_numbers, test_text = encode(test)
    train_dummies = pd.get_dummies(train_text)
    test_dummies = pd.get_dummies(test_text).reindex(columns=train_dummies.columns, fill_value=0)
    x_train = pd.concat([train_numbers, train_dummies], axis=1).to_numpy("float32")
    x_test = pd.concat([test_numbers, test_dummies], axis=1).to_numpy("float32")
    return (x_train, y_train.astype("int64")), (x_test, y_test.astype("int64")), len(classes)
''',
}

_MODELS = {
    "logreg": '''
def build_model(input_shape, num_classes):
    """Multinomial logistic regression: one linear layer on the flattened input."""
    return tf.keras.Sequential([
        tf.keras.layers.Flatten(input_shape=input_shape),
        tf.keras.layers.Dense(num_classes),
    ])
''',
    "mlp": '''
def build_model(input_shape, num_classes):
    """The DP-Adam exercise's MLP: Dense 128 + dropout, then one logit per class."""
    return tf.keras.Sequential([
        tf.keras.layers.Flatten(input_shape=input_shape),
        tf.keras.layers.Dense(128, activation=ACTIVATION),
        tf.keras.layers.Dropout(0.3),
        tf.keras.layers.Dense(num_classes),
    ])
''',
    "cnn": '''
def build_model(input_shape, num_classes):
    """The TensorFlow Privacy tutorial CNN."""
    return tf.keras.Sequential([
        tf.keras.layers.Conv2D(16, 8, strides=2, padding="same", activation=ACTIVATION,
                               input_shape=input_shape),
        tf.keras.layers.MaxPool2D(2, 1),
        tf.keras.layers.Conv2D(32, 4, strides=2, padding="valid", activation=ACTIVATION),
        tf.keras.layers.MaxPool2D(2, 1),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(32, activation=ACTIVATION),
        tf.keras.layers.Dense(num_classes),
    ])
''',
    "lenet5": '''
def build_model(input_shape, num_classes):
    """LeNet-5 as in the MindArmour differential-privacy example."""
    return tf.keras.Sequential([
        tf.keras.layers.Conv2D(6, 5, padding="valid", use_bias=False, activation=ACTIVATION,
                               input_shape=input_shape),
        tf.keras.layers.MaxPool2D(2, 2),
        tf.keras.layers.Conv2D(16, 5, padding="valid", use_bias=False, activation=ACTIVATION),
        tf.keras.layers.MaxPool2D(2, 2),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(120, activation=ACTIVATION),
        tf.keras.layers.Dense(84, activation=ACTIVATION),
        tf.keras.layers.Dense(num_classes),
    ])
''',
}

_OPTIMIZER = {
    "sgd": "dp_optimizer_keras.DPKerasSGDOptimizer(learning_rate=LEARNING_RATE, **dp)",
    "momentum": "dp_optimizer_keras.DPKerasSGDOptimizer(learning_rate=LEARNING_RATE, momentum=MOMENTUM, **dp)",
    "adam": "dp_optimizer_keras.DPKerasAdamOptimizer(learning_rate=LEARNING_RATE, **dp)",
}

_PLAIN_OPTIMIZER = {
    "sgd": "tf.keras.optimizers.SGD(learning_rate=LEARNING_RATE)",
    "momentum": "tf.keras.optimizers.SGD(learning_rate=LEARNING_RATE, momentum=MOMENTUM)",
    "adam": "tf.keras.optimizers.Adam(learning_rate=LEARNING_RATE)",
}

_HEADER = '''#!/usr/bin/env python3
"""Differentially private training of a {model} on {dataset}, exported from DP Explorer.

Runs with TensorFlow 2.15 and TensorFlow Privacy 0.9.0:
    pip install "tensorflow==2.15.1" "tensorflow-privacy==0.9.0" "numpy<2" scikit-learn pandas

How DP-SGD protects each training example:
  1. every example's gradient is clipped to L2 norm at most L2_NORM_CLIP, so no single
     person can move the model by more than that;
  2. Gaussian noise with standard deviation NOISE_MULTIPLIER * L2_NORM_CLIP is added to the
     sum of the clipped gradients, hiding whether any one example was there;
  3. a privacy accountant adds up what every noisy step reveals, giving (epsilon, delta).
"""
import math

import numpy as np
import tensorflow as tf
import dp_accounting
from tensorflow_privacy.privacy.optimizers import dp_optimizer_keras

# ---- The run's settings -------------------------------------------------------------------
SEED = {seed}
SECURE_MODE = {secure_mode}          # True: sampling and noise randomness the seed cannot reproduce
EPOCHS = {epochs}
BATCH_SIZE = {batch_size}          # expected batch size with Poisson sampling
LEARNING_RATE = {learning_rate!r}
MOMENTUM = {momentum!r}              # used by the momentum optimizer only
L2_NORM_CLIP = {l2_norm_clip!r}         # the most one example's gradient may weigh
NOISE_MULTIPLIER = {noise_multiplier!r}     # noise std, in units of L2_NORM_CLIP
DELTA = {delta!r}               # chance that the epsilon guarantee fails; keep it below 1/n
ACCOUNTANT = "{accountant}"           # "rdp" or "pld"
SAMPLING = "{sampling}"          # "poisson" (independent draws each step) or "shuffle"
PRIVATE = {private}              # False: the non-private baseline, no clipping or noise
MAX_TRAIN_EXAMPLES = {max_train_examples!r}
VALIDATION_FRACTION = {validation_fraction!r}   # share of the training rows held out, never trained on
ACTIVATION = "{activation}"
CSV_PATH = {csv_path!r}
CSV_LABEL = {csv_label!r}
'''

_MAIN = '''

def make_optimizer():
    """The base optimizer, wrapped by TensorFlow Privacy when the run is private."""
    if not PRIVATE:
        return {plain}
    # num_microbatches=None: every example is its own microbatch, i.e. per-example clipping.
    dp = dict(l2_norm_clip=L2_NORM_CLIP, noise_multiplier=NOISE_MULTIPLIER, num_microbatches=None)
    return {private_optimizer}


def privacy_spent(n):
    """(epsilon, steps) for the sampling this script performed, from dp_accounting."""
    if not PRIVATE:
        return math.inf, 0
    if SAMPLING == "poisson":
        steps = math.ceil(EPOCHS * n / BATCH_SIZE)
        event = dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(BATCH_SIZE / n, dp_accounting.GaussianDpEvent(NOISE_MULTIPLIER)),
            steps)
    else:
        # Shuffled fixed-size batches: each example is in one step per epoch, and no
        # amplification by sampling is claimed, so each epoch counts as one Gaussian release.
        steps = EPOCHS * math.ceil(n / BATCH_SIZE)
        event = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(NOISE_MULTIPLIER), EPOCHS)
    if ACCOUNTANT == "rdp":
        accountant = dp_accounting.rdp.RdpAccountant()
    else:
        accountant = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    return accountant.compose(event).get_epsilon(DELTA), steps


def poisson_batches(n, rng):
    """One epoch of Poisson sampling: each step keeps every example with probability BATCH_SIZE / n.

    Batch sizes vary around BATCH_SIZE. TensorFlow Privacy's Keras optimizers average the clipped
    gradients over the drawn batch, a common approximation of normalising by BATCH_SIZE.
    """
    for _ in range(math.ceil(n / BATCH_SIZE)):
        chosen = np.flatnonzero(rng.random(n) < BATCH_SIZE / n)
        if chosen.size:
            yield chosen


def main():
    if not SECURE_MODE:
        # Reproducible, for teaching and tuning: but anyone who knows SEED can recompute the noise,
        # so never release a model trained this way as private.
        tf.keras.utils.set_random_seed(SEED)
    (x_train, y_train), (x_test, y_test), num_classes = load_data()
    if MAX_TRAIN_EXAMPLES is not None and MAX_TRAIN_EXAMPLES < len(x_train):
        keep = np.random.default_rng(SEED).permutation(len(x_train))[:MAX_TRAIN_EXAMPLES]
        x_train, y_train = x_train[keep], y_train[keep]
    x_validation = y_validation = None
    if VALIDATION_FRACTION:
        # Held out before training, so n (and epsilon) counts only the rows trained on.
        held = math.ceil(round(len(x_train) * VALIDATION_FRACTION, 6))
        order = np.random.default_rng(SEED + 1).permutation(len(x_train))
        x_validation, y_validation = x_train[order[:held]], y_train[order[:held]]
        x_train, y_train = x_train[order[held:]], y_train[order[held:]]
    n = len(x_train)

    model = build_model(x_train.shape[1:], num_classes)
    # The loss must stay per example (reduction NONE) so the optimizer can clip each one.
    loss = tf.keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE)
    model.compile(optimizer=make_optimizer(), loss=loss, metrics=["accuracy"])

    if SAMPLING == "poisson":
        rng = np.random.default_rng(None if SECURE_MODE else SEED)  # None: fresh OS entropy
        for epoch in range(1, EPOCHS + 1):
            for batch in poisson_batches(n, rng):
                model.train_on_batch(x_train[batch], y_train[batch])
            _, accuracy = model.evaluate(x_test, y_test, verbose=0)
            print(f"epoch {{epoch}}: test accuracy {{accuracy:.4f}}")
    else:
        model.fit(x_train, y_train, epochs=EPOCHS, batch_size=BATCH_SIZE, shuffle=True,
                  validation_data=(x_test, y_test), verbose=2)

    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    epsilon, steps = privacy_spent(n)
    print(f"test accuracy: {{accuracy:.4f}}")
    if x_validation is not None:
        _, validation_accuracy = model.evaluate(x_validation, y_validation, verbose=0)
        print(f"validation accuracy: {{validation_accuracy:.4f}}")
    if PRIVATE:
        print(f"privacy: epsilon = {{epsilon:.4g}} at delta = {{DELTA:g}} "
              f"({{ACCOUNTANT.upper()}}, {{SAMPLING}} sampling, {{steps}} steps, n = {{n}})")
    else:
        print("privacy: none (non-private baseline, epsilon = infinity)")


if __name__ == "__main__":
    main()
'''


def render_script(config: "DPConfig") -> str:
    """The script text for ``config``; it imports nothing from DP Explorer.

    A setting the script cannot reproduce is refused with a ConfigError naming it, never dropped.
    """
    _refuse_unexported(config)
    header = _HEADER.format(
        model=config.model, dataset=config.dataset, seed=config.seed, secure_mode=config.secure_mode, epochs=config.epochs,
        batch_size=config.batch_size, learning_rate=config.learning_rate, momentum=config.momentum,
        l2_norm_clip=config.l2_norm_clip, noise_multiplier=config.noise_multiplier, delta=config.delta,
        accountant=config.accountant, sampling=config.sampling, private=config.private,
        max_train_examples=config.max_train_examples, activation=config.activation,
        csv_path=config.csv_path, csv_label=config.csv_label, validation_fraction=config.validation_fraction,
    )
    main = _MAIN.format(plain=_PLAIN_OPTIMIZER[config.optimizer], private_optimizer=_OPTIMIZER[config.optimizer])
    return header + _DATA[config.dataset] + _MODELS[config.model] + main


def _refuse_unexported(config: "DPConfig") -> None:
    """Noise schedules, adaptive clipping and ε budgets are not in the script yet: refused, since the
    script's run and its ε would not be the ones DP Explorer accounted for."""
    if not config.private:
        return  # a baseline ignores them
    if schedule_of(config).decays:
        raise ConfigError("noise_schedule", f"a {config.noise_schedule!r} schedule cannot be exported yet: "
                          "the script adds the same noise at every step", allowed="constant")
    if config.adaptive_clipping:
        raise ConfigError("adaptive_clipping", "adaptive clipping cannot be exported yet: the script clips "
                          "at a fixed norm", allowed="false")
    if config.epsilon_budget is not None:
        raise ConfigError("epsilon_budget", "the script trains all its epochs and does not stop at a budget",
                          allowed="null (set epochs to the epochs the budget allows instead)")
