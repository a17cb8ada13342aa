"""Render a DPConfig as a standalone, commented Python script that uses TensorFlow Privacy's public API.

The script does exactly what it accounts for, as dpcore's trainer does: Poisson sampling takes
``accounting.dp_steps`` steps, each a fresh Poisson draw (an empty draw still takes a noise-only
step), and divides the clipped, noised sum by the expected batch size; shuffle sampling takes
epochs * ceil(n / batch_size) fixed-size batches. It prints the noisy steps it took next to its ε.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dpcore.data.scatter import SCATTERNET_MODELS
from dpcore.data.splits import CSV_SPLIT_KEY, CSV_TEST_FRACTION
from dpcore.errors import ConfigError, UserInputError
from dpcore.model_specs import CNN_PIXEL_OFFSET, CNN_PIXEL_SCALE, LENET_SIDE
from dpcore.privacy.noise import schedule_of

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
def spell(value):
    """One spelling per cell, as in DP Explorer's schemas: "1.0" and "1" are "1"; true/false lower-case;
    None for a missing cell (empty, or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text) if "_" not in text else None
    except ValueError:
        number = None
    if number is None:
        return text
    if math.isnan(number):
        return None
    if math.isfinite(number) and number == int(number) and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def number(value):
    """The number a cell holds (true = 1, false = 0), NaN if none."""
    text = spell(value)
    if text is None:
        return math.nan
    if text in ("true", "false"):
        return float(text == "true")
    try:
        return float(text) if "_" not in text else math.nan
    except ValueError:
        return math.nan


def read_rows():
    """CSV_PATH as text cells (UTF-8, else Latin-1; commas, else semicolons or tabs), rows without a label dropped."""
    import io
    import pandas as pd
    with open(CSV_PATH, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    header = text.lstrip().split("\\n", 1)[0]
    separator = max((";", "\\t"), key=header.count) if "," not in header and (";" in header or "\\t" in header) else ","
    frame = pd.read_csv(io.StringIO(text), sep=separator, skipinitialspace=True, dtype=str)
    return frame[frame[CSV_LABEL].map(spell).notna()].reset_index(drop=True)


def row_coins(frame):
    """Three coins in [0, 1) per row (test, subset, validation), from a keyed hash of the row's own
    cells, as DP Explorer draws them: adding or removing a row moves no other row."""
    import hashlib
    cells = [frame[column].map(spell).tolist() for column in frame.columns]
    coins = []
    for row in zip(*cells):
        text = "".join("-" if cell is None else f"{len(cell)}:{cell}" for cell in row)
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=SPLIT_KEY, digest_size=24).digest()
        coins.append([(int.from_bytes(digest[8 * k:8 * k + 8], "big") >> 11) / 2**53 for k in range(3)])
    return np.array(coins, dtype=np.float64).reshape(-1, 3)


def load_data():
    """Your CSV's rows under its public schema CSV_SCHEMA, with their coins: nothing is fitted on the rows.

    Numbers are clipped to their [low, high] and scaled; a missing one is the middle of its range.
    Categories are one-hot with one more slot for any other value; a missing one is all zeros.
    Rows without a label are dropped; a label outside the schema's classes is the class "(other)"
    when the schema says other_class, else it stops the script.
    """
    if CSV_SCHEMA is None:
        raise SystemExit("This config has no public CSV schema. DP Explorer reads a declared one (csv_schema) or "
                         "derives one privately and counts it in epsilon (csv_preprocessing_epsilon); this script "
                         "only applies a declared one. Declare csv_schema and export again.")
    frame = read_rows()
    classes = [spell(c) for c in CSV_SCHEMA["classes"]]
    labels = frame[CSV_LABEL].map(spell)
    unknown = labels[~labels.isin(classes)]
    if len(unknown) and not CSV_SCHEMA.get("other_class"):
        raise SystemExit(f"Some rows have a label outside the schema's classes {classes}: {sorted(set(unknown))[:5]}")
    columns = []
    for name, (low, high) in CSV_SCHEMA["numeric"].items():
        scaled = ((frame[name].map(number).astype(float).clip(low, high) - low) / (high - low)).fillna(0.5)
        columns.append(2 * scaled - 1 if CSV_SCHEMA.get("scale") == "symmetric" else scaled)
    for name, categories in CSV_SCHEMA["categorical"].items():
        spelled = frame[name].map(spell)
        known = [spell(c) for c in categories]
        columns += [spelled == c for c in known] + [spelled.notna() & ~spelled.isin(known)]
    x = np.stack([np.asarray(c, dtype="float32") for c in columns], axis=1)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index.get(label, len(classes)) for label in labels], dtype="int64")
    return x, y, row_coins(frame), len(classes) + (1 if CSV_SCHEMA.get("other_class") else 0)


def training_data():
    """The rows that train, test and validate, each row by its own coins, as in DP Explorer: a test
    row when its first coin is below TEST_FRACTION; else in the MAX_TRAIN_EXAMPLES subset when its
    second is below MAX_TRAIN_EXAMPLES / (rows outside the test split); then held out for validation
    when its third is below VALIDATION_FRACTION. n is the number of rows that train."""
    x, y, coins, num_classes = load_data()
    tests = coins[:, 0] < TEST_FRACTION
    if not tests.any():
        raise SystemExit(f"No row of {CSV_PATH} falls in the test split; add rows.")
    outside = int((~tests).sum())
    rate = 1.0 if MAX_TRAIN_EXAMPLES is None or outside <= MAX_TRAIN_EXAMPLES else MAX_TRAIN_EXAMPLES / outside
    kept = ~tests & (coins[:, 1] < rate)
    validates = kept & (coins[:, 2] < VALIDATION_FRACTION)
    trains = kept & ~validates
    validation = (x[validates], y[validates]) if VALIDATION_FRACTION else (None, None)
    return (x[trains], y[trains]), (x[tests], y[tests]), validation, num_classes
''',
}

# The rows of a built-in dataset that train and validate: its own test set is kept as published.
_PUBLIC_SPLIT = '''

def training_data():
    """The rows that train, test and validate: the dataset's own test set; the first MAX_TRAIN_EXAMPLES
    of a fixed permutation of its training set; VALIDATION_FRACTION of those held out by another."""
    (x_train, y_train), test, num_classes = load_data()
    if MAX_TRAIN_EXAMPLES is not None and MAX_TRAIN_EXAMPLES < len(x_train):
        keep = np.random.default_rng(SEED).permutation(len(x_train))[:MAX_TRAIN_EXAMPLES]
        x_train, y_train = x_train[keep], y_train[keep]
    validation = (None, None)
    if VALIDATION_FRACTION:
        # Held out before training, so n (and epsilon) counts only the rows trained on.
        held = math.ceil(round(len(x_train) * VALIDATION_FRACTION, 6))
        order = np.random.default_rng(SEED + 1).permutation(len(x_train))
        validation = (x_train[order[:held]], y_train[order[:held]])
        x_train, y_train = x_train[order[held:]], y_train[order[held:]]
    return (x_train, y_train), test, validation, num_classes
'''
# The key and test share of a CSV row's coins, as ``dpcore.data.splits`` draws them.
_CSV_SPLIT = f"""

SPLIT_KEY = {CSV_SPLIT_KEY!r}   # public: a row's coins depend on its cells alone
TEST_FRACTION = {CSV_TEST_FRACTION!r}

"""

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
    "cnn": f'''
def build_model(input_shape, num_classes):
    """The TensorFlow Privacy tutorial CNN, its pixels first mapped from [0, 1] to [-1, 1]."""
    return tf.keras.Sequential([
        tf.keras.layers.Rescaling({CNN_PIXEL_SCALE!r}, offset={CNN_PIXEL_OFFSET!r}, input_shape=input_shape),
        tf.keras.layers.Conv2D(16, 8, strides=2, padding="same", activation=ACTIVATION),
        tf.keras.layers.MaxPool2D(2, 1),
        tf.keras.layers.Conv2D(32, 4, strides=2, padding="valid", activation=ACTIVATION),
        tf.keras.layers.MaxPool2D(2, 1),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(32, activation=ACTIVATION),
        tf.keras.layers.Dense(num_classes),
    ])
''',
    "lenet5": f'''
def build_model(input_shape, num_classes):
    """LeNet-5 as in the MindArmour differential-privacy example, on images resized to {LENET_SIDE}x{LENET_SIDE} as there."""
    return tf.keras.Sequential([
        tf.keras.layers.Resizing({LENET_SIDE}, {LENET_SIDE}, interpolation="bilinear", input_shape=input_shape),
        tf.keras.layers.Conv2D(6, 5, padding="valid", use_bias=False, activation=ACTIVATION),
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
    "sgd": "tf.keras.optimizers.legacy.SGD(learning_rate=LEARNING_RATE)",
    "momentum": "tf.keras.optimizers.legacy.SGD(learning_rate=LEARNING_RATE, momentum=MOMENTUM)",
    "adam": "tf.keras.optimizers.legacy.Adam(learning_rate=LEARNING_RATE)",
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

The epsilon printed at the end is that of the steps this script took: it counts them as it goes
and composes exactly that many in dp_accounting.
"""
import math
import os

# Before TensorFlow loads: its C++ start-up lines (CUDA/cuDNN factory registrations, CPU feature
# notes) stay out of the output; set TF_CPP_MIN_LOG_LEVEL yourself to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
import dp_accounting
import tensorflow_privacy

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
# None: evaluate the last step's weights; else the moving average of every step's weights with this
# decay (post-processing of the noisy weights, so it costs no epsilon)
WEIGHT_AVERAGING_DECAY = {weight_averaging_decay!r}
ACTIVATION = "{activation}"
CSV_PATH = {csv_path!r}
CSV_LABEL = {csv_label!r}
CSV_SCHEMA = {csv_schema!r}
'''

_MAIN = '''

def make_optimizer():
    """The optimizer that applies each step's (privatised) gradient."""
    return {optimizer}


def steps_after(epochs, n):
    """Poisson sampling's step count after ``epochs`` epochs: ceil(epochs * n / BATCH_SIZE), in whole numbers."""
    return (epochs * n + BATCH_SIZE - 1) // BATCH_SIZE


def epoch_batches(epoch, n, rng):
    """The index arrays of one epoch's steps, so that the run takes exactly the steps it accounts for.

    Poisson: steps_after(EPOCHS, n) steps in all, epoch e ending after steps_after(e, n); each step
    keeps every example independently with probability BATCH_SIZE / n, so a batch may be larger or
    smaller than BATCH_SIZE, or empty. Shuffle: a fresh permutation cut into batches of BATCH_SIZE
    (the last may be smaller).
    """
    if SAMPLING == "poisson":
        for _ in range(steps_after(epoch, n) - steps_after(epoch - 1, n)):
            yield np.flatnonzero(rng.random(n) < BATCH_SIZE / n)
    else:
        order = rng.permutation(n)
        for start in range(0, n, BATCH_SIZE):
            yield order[start:start + BATCH_SIZE]


def make_train_step(model, example_shape):
    """A compiled step on one batch: (x, y, normalizer) -> None.

    Private: TensorFlow Privacy's GaussianSumQuery (the query inside its DPKeras optimizers) clips
    every example's gradient to L2_NORM_CLIP and adds Gaussian noise of standard deviation
    NOISE_MULTIPLIER * L2_NORM_CLIP to their sum; the noisy sum is divided by ``normalizer`` and
    applied. Poisson sampling divides by the expected batch size BATCH_SIZE, never by the drawn
    size (which depends on who was drawn), and an empty draw still takes a noise-only step: that
    is the mechanism the accountant's Poisson-subsampled Gaussian describes. The DPKeras
    optimizers divide by the drawn size and cannot take an empty batch, so the query is used directly.
    Non-private baseline: the plain gradient of the batch's mean loss.
    """
    optimizer = make_optimizer()
    variables = model.trainable_variables
    # The loss stays per example (reduction NONE) so that each example's gradient can be clipped.
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE)
    query = tensorflow_privacy.GaussianSumQuery(
        l2_norm_clip=L2_NORM_CLIP, stddev=NOISE_MULTIPLIER * L2_NORM_CLIP)
    signature = [tf.TensorSpec([None, *example_shape], tf.float32), tf.TensorSpec([None], tf.int64),
                 tf.TensorSpec([], tf.float32)]

    @tf.function(input_signature=signature)
    def private_step(x, y, normalizer):
        with tf.GradientTape() as tape:
            losses = loss_fn(y, model(x, training=True))
        # One gradient per example: the Jacobian of the per-example losses (empty for an empty batch).
        per_example = tape.jacobian(losses, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        global_state = query.initial_global_state()
        params = query.derive_sample_params(global_state)
        clipped_sum = query.initial_sample_state(variables)
        for i in tf.range(tf.shape(y)[0]):
            clipped_sum = query.accumulate_record(params, clipped_sum, [g[i] for g in per_example])
        noisy_sum, _, _ = query.get_noised_result(clipped_sum, global_state)
        optimizer.apply_gradients(zip([g / normalizer for g in noisy_sum], variables))

    @tf.function(input_signature=signature)
    def plain_step(x, y, normalizer):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(y, model(x, training=True)))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    return private_step if PRIVATE else plain_step


class WeightAverage:
    """The moving average of the model's weights after every step, with the zero start's bias divided
    out: after t steps, (1 - d) * sum over s of d**(t - s) * w_s, divided by 1 - d**t."""

    def __init__(self, model, decay):
        self.model, self.decay, self.updates = model, decay, 0
        self.sums = [np.zeros(np.shape(w), dtype=np.float64) for w in model.get_weights()]

    def update(self):
        for total, weight in zip(self.sums, self.model.get_weights()):
            total *= self.decay
            total += (1.0 - self.decay) * weight
        self.updates += 1

    def values(self):
        correction = 1.0 - self.decay ** self.updates
        return [(total / correction).astype(np.float32) for total in self.sums]


def evaluated_accuracy(model, average, x, y):
    """held_out_accuracy of the weights the run reports: the moving average when there is one."""
    if average is None or average.updates == 0:
        return held_out_accuracy(model, x, y)
    current = model.get_weights()
    model.set_weights(average.values())
    try:
        return held_out_accuracy(model, x, y)
    finally:
        model.set_weights(current)


def privacy_spent(n, noisy_steps, epochs):
    """epsilon of ``noisy_steps`` steps over ``epochs`` epochs of the sampling used, from dp_accounting."""
    if not PRIVATE:
        return math.inf
    if SAMPLING == "poisson":
        event = dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(BATCH_SIZE / n, dp_accounting.GaussianDpEvent(NOISE_MULTIPLIER)),
            noisy_steps)
    else:
        # Shuffled batches: each example is in one step per epoch, and no amplification by
        # sampling is claimed, so each epoch counts as one Gaussian release.
        event = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(NOISE_MULTIPLIER), epochs)
    if ACCOUNTANT == "rdp":
        accountant = dp_accounting.rdp.RdpAccountant()
    else:
        accountant = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    return accountant.compose(event).get_epsilon(DELTA)


def held_out_accuracy(model, x, y):
    """Share of held-out examples whose largest logit is the true class."""
    logits = model.predict(x, batch_size=1000, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def main():
    if not SECURE_MODE:
        # Reproducible, for teaching and tuning: but anyone who knows SEED can recompute the noise,
        # so never release a model trained this way as private.
        tf.keras.utils.set_random_seed(SEED)
    (x_train, y_train), (x_test, y_test), (x_validation, y_validation), num_classes = training_data()
    n = len(x_train)

    model = build_model(x_train.shape[1:], num_classes)
    train_step = make_train_step(model, x_train.shape[1:])
    average = None if WEIGHT_AVERAGING_DECAY is None else WeightAverage(model, WEIGHT_AVERAGING_DECAY)
    rng = np.random.default_rng(None if SECURE_MODE else SEED)  # None: fresh OS entropy
    steps = 0  # with PRIVATE, every step adds noise
    for epoch in range(1, EPOCHS + 1):
        for batch in epoch_batches(epoch, n, rng):
            if not PRIVATE and batch.size == 0:
                continue  # the mean loss of an empty batch is undefined; the baseline skips it
            normalizer = BATCH_SIZE if SAMPLING == "poisson" else batch.size
            train_step(x_train[batch], y_train[batch], tf.constant(normalizer, tf.float32))
            steps += 1
            if average is not None:
                average.update()
        accuracy = evaluated_accuracy(model, average, x_test, y_test)
        print(f"epoch {{epoch}}: test accuracy {{accuracy:.4f}}")

    print(f"test accuracy: {{accuracy:.4f}}")
    if x_validation is not None:
        print(f"validation accuracy: {{evaluated_accuracy(model, average, x_validation, y_validation):.4f}}")
    if PRIVATE:
        epsilon = privacy_spent(n, steps, EPOCHS)
        print(f"privacy: epsilon = {{epsilon:.4g}} at delta = {{DELTA:g}} after {{steps}} noisy steps "
              f"({{ACCOUNTANT.upper()}}, {{SAMPLING}} sampling, n = {{n}})")
    else:
        print("privacy: none (non-private baseline, epsilon = infinity)")


if __name__ == "__main__":
    main()
'''


# The script's sections in order, each with the line its training part starts with (the settings,
# the data and the model are rendered from their own texts): what the notebook puts in its cells.
SCRIPT_SECTIONS = ("settings", "data", "model", "dp_step", "evaluation", "epsilon", "run")
_MAIN_SECTION_STARTS = (
    ("dp_step", "\n\ndef steps_after("),
    ("evaluation", "\n\nclass WeightAverage:"),
    ("epsilon", "\n\ndef privacy_spent("),
    ("run", "\n\ndef held_out_accuracy("),
)


@dataclass(frozen=True)
class ScriptSection:
    """One section of the exported script: ``name`` (one of SCRIPT_SECTIONS) and its code, as it stands in the script."""

    name: str
    code: str


def render_script(config: DPConfig) -> str:
    """The script text for ``config``; it imports nothing from DP Explorer.

    A setting the script cannot reproduce is refused with a ConfigError naming it, never dropped:
    ScatterNet models are refused (ConfigError naming ``model``): the script does not compute
    their features.
    """
    return "".join(section.code for section in script_sections(config))


def script_sections(config: DPConfig) -> tuple[ScriptSection, ...]:
    """The script of ``config`` in its sections (SCRIPT_SECTIONS), whose codes joined are the script;
    refused as ``render_script`` refuses. The model's section ends with its optimizer."""
    if config.model in SCATTERNET_MODELS:
        raise ConfigError(
            "model",
            f"{config.model!r} cannot be exported as a script yet: it trains on "
            "ScatterNet features, which the script does not compute; train it with "
            "`python -m dpcore train --config FILE` on a config file",
            allowed=", ".join(_MODELS) + " for a script",
        )
    _refuse_unexported(config)
    header = _HEADER.format(
        model=config.model,
        dataset=config.dataset,
        seed=config.seed,
        secure_mode=config.secure_mode,
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        momentum=config.momentum,
        l2_norm_clip=config.l2_norm_clip,
        noise_multiplier=config.noise_multiplier,
        delta=config.delta,
        accountant=config.accountant,
        sampling=config.sampling,
        private=config.private,
        max_train_examples=config.max_train_examples,
        activation=config.activation,
        csv_path=config.csv_path,
        csv_label=config.csv_label,
        validation_fraction=config.validation_fraction,
        weight_averaging_decay=config.weight_averaging_decay,
        csv_schema=config.csv_schema.to_dict() if config.csv_schema is not None else None,
    )
    main = _MAIN.format(optimizer=_OPTIMIZER[config.optimizer])
    data = _CSV_SPLIT + _DATA["csv"] if config.dataset == "csv" else _DATA[config.dataset] + _PUBLIC_SPLIT
    cuts = [main.index(start) for _, start in _MAIN_SECTION_STARTS] + [len(main)]
    return (
        ScriptSection("settings", header),
        ScriptSection("data", data),
        ScriptSection("model", _MODELS[config.model] + main[: cuts[0]]),
        *(ScriptSection(name, main[cuts[i] : cuts[i + 1]]) for i, (name, _) in enumerate(_MAIN_SECTION_STARTS)),
    )


EXPORT_FORMATS = ("json", "yaml", "script")


def render_export(config: DPConfig, *, export_format: str) -> str:
    """``config`` as the Export page offers it: a JSON or YAML config file, or the standalone script."""
    if export_format == "json":
        return config.to_json()
    if export_format == "yaml":
        return config.to_yaml()
    if export_format == "script":
        return render_script(config)
    raise UserInputError("format", f"{export_format!r} is not an export format", allowed=", ".join(EXPORT_FORMATS))


def _refuse_unexported(config: DPConfig) -> None:
    """Noise schedules, adaptive clipping and ε budgets are not in the script yet: refused, since the
    script's run and its ε would not be the ones DP Explorer accounted for."""
    if not config.private:
        return  # a baseline ignores them
    if schedule_of(config).decays:
        raise ConfigError(
            "noise_schedule",
            f"a {config.noise_schedule!r} schedule cannot be exported yet: "
            "the script adds the same noise at every step",
            allowed="constant",
        )
    if config.adaptive_clipping:
        raise ConfigError(
            "adaptive_clipping",
            "adaptive clipping cannot be exported yet: the script clips at a fixed norm",
            allowed="false",
        )
    if config.epsilon_budget is not None:
        raise ConfigError(
            "epsilon_budget",
            "the script trains all its epochs and does not stop at a budget",
            allowed="null (set epochs to the epochs the budget allows instead)",
        )
