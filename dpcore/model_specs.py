"""What each model can train on, how it is described and in how many parts its DP step takes a batch,
without TensorFlow (pages import it freely).

The builders themselves live in dpcore.dpsgd.models; the trainer, the CLI and the pages all check a
model against a dataset's input shape here, so the rule is stated once.
"""

from __future__ import annotations

from dpcore.config import MODEL_TITLES, MODELS
from dpcore.errors import ConfigError

# The convolutional recipes were designed for 28x28 (MNIST-sized) images and need at least that.
MIN_IMAGE_SIDE = 28
# The CNN's first layer maps pixels from [0, 1] to [-1, 1]: x * scale + offset.
CNN_PIXEL_SCALE, CNN_PIXEL_OFFSET = 2.0, -1.0
# LeNet-5 resizes its input to this side first, as MindArmour resizes MNIST.
LENET_SIDE = 32
# Models that flatten their input, so they take images of any size and tabular rows alike.
FLAT_INPUT_MODELS = ("logreg", "mlp")
# Where each recipe comes from, shown after its title (see dpcore.dpsgd.models).
RECIPES = {
    "mlp": "Dense 128 + dropout",
    "cnn": "TensorFlow Privacy tutorial",
    "lenet5": "MindArmour",
    "scatternet_linear": "Tramèr & Boneh",
    "scatternet_cnn": "Tramèr & Boneh",
}
# A DP step computes its batch's clipped gradient sum in parts of at most this many examples (one
# graph, the parts independent), which keeps each part's per-example tensors small and both cores
# busy; models not listed take the batch whole. Measured on the 2-core CPU (docs/performance.md,
# "Why dpcore is fast"): the CNN's training +7% at batch 250 (2 parts) and +50% at 2048 (8 parts);
# LeNet-5 +24%, the MLP about +25% and the ScatterNet CNN head +10% at 2048. The MLP at 250 and the
# linear ScatterNet head (one large matrix product a step) are as fast or faster whole. Each part is
# traced separately, so their number is capped: the CNN's first run at batch 2048 (two steps) took
# 1.6 s whole, 3.2 s in 8 parts and 6.0 s in 16.
STEP_PART_EXAMPLES = {"cnn": 128, "lenet5": 256, "mlp": 256, "scatternet_cnn": 256}
MAX_STEP_PARTS = 8
INPUT_REQUIREMENTS = {
    "logreg": "any input (images are flattened)",
    "mlp": "any input (images are flattened)",
    "cnn": f"images (height, width, channels) of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}",
    "lenet5": f"images (height, width, channels) of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}, resized to 32x32",
    "scatternet_linear": f"images (height, width, channels) of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}, "
    "turned into normalised ScatterNet features (J = 2, L = 8)",
    "scatternet_cnn": f"images (height, width, channels) of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}, "
    "turned into normalised ScatterNet features (J = 2, L = 8)",
}


def model_description(model: str) -> str:
    """The model's title with its recipe's source, e.g. "CNN (TensorFlow Privacy tutorial)"."""
    recipe = RECIPES.get(model)
    return f"{MODEL_TITLES[model]} ({recipe})" if recipe else MODEL_TITLES[model]


def supported_models(input_shape: tuple[int, ...]) -> tuple[str, ...]:
    """Models that accept inputs of ``input_shape`` (one example, without the batch axis)."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3 and min(shape[0], shape[1]) >= MIN_IMAGE_SIDE:
        return MODELS
    return FLAT_INPUT_MODELS


def check_pair(model: str, input_shape: tuple[int, ...]) -> None:
    """Raise ConfigError naming ``model`` if it cannot take inputs of ``input_shape``."""
    if model not in MODELS:
        raise ConfigError("model", f"{model!r} is not a known model", allowed=", ".join(MODELS))
    allowed = supported_models(input_shape)
    if model not in allowed:
        shape = "x".join(str(d) for d in input_shape)
        raise ConfigError(
            "model",
            f"{model!r} cannot train on inputs of shape {shape}: it needs {INPUT_REQUIREMENTS[model]}",
            allowed=", ".join(allowed) + " for this dataset",
        )


def step_parts(model: str, batch_size: int) -> int:
    """How many parts a DP step of ``model`` splits a batch of (expected) ``batch_size`` into (1: whole)."""
    examples = STEP_PART_EXAMPLES.get(model)
    return 1 if examples is None else min(MAX_STEP_PARTS, max(1, -(-int(batch_size) // examples)))
