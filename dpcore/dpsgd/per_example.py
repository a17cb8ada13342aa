"""Per-example gradient norms and reweighted gradient sums: the fast path, the generic path, refusals.

The fast path runs a Sequential model layer by layer, recording for every trainable layer with a rule
in ``layer_rules`` its pre-activation output z (and what the rule needs); one backward pass gives
g = dloss_i/dz for all examples, and the rules give every example's gradient norm and the gradient
of any reweighted loss sum from (recorded, g) without per-example backward passes. It takes a model
only when every layer is known to act on each example separately and every trainable variable is
used once. Any other model takes the generic path (tf.vectorized_map over examples, each one alone),
which is correct for every layer that acts per example, shared layers included.

What no path can make private is refused by ``check_privatizable``: layers that mix the examples of a
batch or keep state in variables that their call may update from the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import tensorflow as tf

from dpcore.dpsgd import layer_rules
from dpcore.errors import UserInputError

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

# Layers without trainable weights that compute each example's output from that example alone; the
# fast path runs them on the whole batch. Any other layer sends its model to the generic path.
_PER_EXAMPLE_LAYERS = tuple(
    getattr(tf.keras.layers, name)
    for name in (
        "InputLayer",
        "Flatten",
        "Reshape",
        "Permute",
        "RepeatVector",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "ELU",
        "Softmax",
        "ThresholdedReLU",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "MaxPool1D",
        "MaxPool2D",
        "MaxPool3D",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "GlobalMaxPool1D",
        "GlobalMaxPool2D",
        "GlobalMaxPool3D",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "UpSampling1D",
        "UpSampling2D",
        "UpSampling3D",
        "Resizing",
        "Rescaling",
        "CenterCrop",
        "UnitNormalization",
        "Identity",
    )
)

# Layers that compute statistics across the batch in training and write moving averages of the data.
_BATCH_MIXING_LAYERS = tuple(
    cls
    for cls in (
        tf.keras.layers.BatchNormalization,
        tf.compat.v1.keras.layers.BatchNormalization,
        getattr(tf.keras.layers.experimental, "SyncBatchNormalization", None),
    )
    if cls is not None
)
ALTERNATIVES = "LayerNormalization or GroupNormalization"


def check_privatizable(model: tf.keras.Model) -> None:
    """Raise UserInputError naming the first layer that DP-SGD cannot make private, and what to use.

    Refused: BatchNormalization in any form (trainable or frozen: its batch statistics let one example
    move every other example's gradient, and training writes moving averages of private data into
    the model), and any layer that keeps state in non-trainable variables (created with
    trainable=False), which its call may update from the data outside clipping and noise, e.g. an
    adapted Normalization. A frozen layer (``layer.trainable = False``) is not state and is accepted.
    """
    for layer in _layers(model):
        if isinstance(layer, _BATCH_MIXING_LAYERS):
            _refuse(
                f"layer {layer.name!r} ({type(layer).__name__}) normalises with statistics of the "
                "whole batch, so one example changes every other example's gradient, and it writes moving "
                "averages of the private data into the model; DP-SGD cannot bound that",
                allowed=f"per-example layers: use {ALTERNATIVES} instead of {type(layer).__name__}",
            )
        state = [variable.name for variable in _own_variables(layer) if not variable.trainable]
        if state:
            _refuse(
                f"layer {layer.name!r} ({type(layer).__name__}) keeps state in non-trainable "
                f"variables ({', '.join(state)}) that can be set or updated from the data outside "
                "DP-SGD's clipping and noise",
                allowed="layers whose only variables are trainable or frozen weights (fixed statistics "
                f"as constants, e.g. Normalization(mean=..., variance=...); {ALTERNATIVES} for "
                "normalising activations)",
            )


def _refuse(message: str, *, allowed: str) -> None:
    error = UserInputError("model", message, allowed=allowed)
    # Inside tf.function, autograph would replace an error it cannot rebuild from a string with its
    # own StagingError; this attribute lets the refusal reach the caller as itself.
    error.ag_pass_through = True
    raise error


def _layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """The model and every Keras layer nested in it (metrics aside)."""
    nested = [
        m
        for m in model.submodules
        if isinstance(m, tf.keras.layers.Layer) and not isinstance(m, tf.keras.metrics.Metric)
    ]
    return [model, *nested]


def _own_variables(layer: tf.keras.layers.Layer) -> list[tf.Variable]:
    """Variables of ``layer`` that belong to none of its nested layers."""
    nested = {v.ref() for sub in layer.submodules if isinstance(sub, tf.keras.layers.Layer) for v in sub.variables}
    return [v for v in layer.variables if v.ref() not in nested]


@dataclass(frozen=True)
class Tap:
    """One ruled layer's recorded tensor (its input, or what its rule needs) and its pre-activation output."""

    layer: tf.keras.layers.Layer
    rule: layer_rules.LayerRule
    recorded: tf.Tensor
    outputs: tf.Tensor


@dataclass(frozen=True)
class Forward:
    """Logits of a forward pass and the taps of its ruled layers."""

    logits: tf.Tensor
    taps: tuple[Tap, ...]


def _tapped(layer: tf.keras.layers.Layer) -> bool:
    return layer.trainable and bool(layer.trainable_weights) and layer_rules.rule_for(layer) is not None


def _chain(model: tf.keras.Model) -> Optional[list[tf.keras.layers.Layer]]:
    """A Sequential model's layers when calling them in order is the model, else None.

    Keras lists a layer once however often the model calls it; a layer with more than one call site
    (used twice here, or also in another model) is left to the model's own call.
    """
    if not isinstance(model, tf.keras.Sequential):
        return None
    layers = model.layers
    return layers if all(len(layer.inbound_nodes) <= 1 for layer in layers) else None


def supports_fast_path(model: tf.keras.Model) -> bool:
    """True for a Sequential model whose layers all act per example, each trainable one with a rule,
    and whose trainable variables are each used once (a layer used twice takes the generic path)."""
    layers = _chain(model)
    if layers is None:
        return False
    for layer in layers:
        ruled = layer_rules.rule_for(layer) is not None
        if not (ruled or isinstance(layer, _PER_EXAMPLE_LAYERS)):
            return False
        if layer.trainable_weights and not _tapped(layer):
            return False
    uses = [v.ref() for layer in layers for v in layer.trainable_weights]
    return len(uses) == len(set(uses)) == len(model.trainable_variables)


def forward(model: tf.keras.Model, x: tf.Tensor, *, training: bool, seed: tf.Tensor, tap: bool = False) -> Forward:
    """Run ``model`` on ``x``; dropout masks come from ``seed``; with ``tap``, record ruled layers.

    A Sequential model runs layer by layer so that dropout uses stateless masks (a step can be
    replayed exactly) and, with ``tap``, so that ruled layers are computed by their rules and their
    pre-activation outputs recorded. Any other model is called as a whole (no taps).
    """
    layers = _chain(model)
    if layers is None:
        return Forward(logits=model(x, training=training), taps=())
    taps = []
    h = x
    for index, layer in enumerate(layers):
        if tap and _tapped(layer):
            rule = layer_rules.rule_for(layer)
            z, recorded = rule.pre_activation(layer, h)
            taps.append(Tap(layer=layer, rule=rule, recorded=recorded, outputs=z))
            h = layer_rules.activate(layer, z)
        elif isinstance(layer, tf.keras.layers.Dropout):
            if training and layer.rate > 0:
                h = tf.nn.experimental.stateless_dropout(
                    h,
                    rate=layer.rate,
                    seed=tf.random.experimental.stateless_fold_in(seed, index),
                    noise_shape=layer._get_noise_shape(h),
                )
        else:
            h = layer(h, training=training)
    return Forward(logits=h, taps=tuple(taps))


def tap_gradients(
    taps: tuple[Tap, ...], output_grads: list[tf.Tensor]
) -> tuple[Optional[layer_rules.VariableGradients], ...]:
    """Per tap, the per-example gradients its rule materialises (batch first), or None where it does not."""
    return tuple(
        None if tap.rule.per_example_gradients is None else tap.rule.per_example_gradients(tap.layer, tap.recorded, g)
        for tap, g in zip(taps, output_grads)
    )


def squared_norms(
    taps: tuple[Tap, ...],
    output_grads: list[tf.Tensor],
    materialised: Optional[tuple[Optional[layer_rules.VariableGradients], ...]] = None,
) -> tf.Tensor:
    """Each example's squared gradient norm over all tapped layers' variables, shape (batch,);
    from ``materialised`` (``tap_gradients``) where a tap has them."""
    materialised = materialised if materialised is not None else (None,) * len(taps)
    parts = []
    for tap, g, own in zip(taps, output_grads, materialised):
        if own is None:
            parts.append(tap.rule.squared_norms(tap.layer, tap.recorded, g))
        else:
            parts.extend(tf.reduce_sum(tf.square(tf.reshape(grad, [tf.shape(grad)[0], -1])), axis=1) for _, grad in own)
    return tf.add_n(parts)


def weighted_gradients(
    taps: tuple[Tap, ...],
    output_grads: list[tf.Tensor],
    weights: tf.Tensor,
    materialised: Optional[tuple[Optional[layer_rules.VariableGradients], ...]] = None,
) -> dict[int, tf.Tensor]:
    """Gradient of sum_i weights_i * loss_i for every tapped variable, keyed by id(variable): the weighted
    sum of ``materialised`` per-example gradients where a tap has them, else its rule's weight gradient."""
    materialised = materialised if materialised is not None else (None,) * len(taps)
    grads: dict[int, tf.Tensor] = {}
    for tap, g, own in zip(taps, output_grads, materialised):
        if own is not None:
            for variable, per_example in own:
                grads[id(variable)] = tf.tensordot(weights, per_example, axes=1)
            continue
        scaled = g * tf.reshape(weights, [-1] + [1] * (g.shape.rank - 1))
        for variable, gradient in tap.rule.weight_gradients(tap.layer, tap.recorded, scaled):
            grads[id(variable)] = gradient
    return grads


# -- generic path --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerExample:
    """Per-example losses, logits and gradients (one tensor per variable, batch axis first)."""

    losses: tf.Tensor
    logits: tf.Tensor
    gradients: tuple[tf.Tensor, ...]


def per_example_gradients(
    model: tf.keras.Model,
    loss_fn: LossFn,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    training: bool,
    seed: tf.Tensor,
    variables: Optional[list[tf.Variable]] = None,
) -> PerExample:
    """Every example's own gradient, computed with tf.vectorized_map, each example alone.

    Works for any layer that acts per example; a layer used several times gets the sum of its uses.
    """
    variables = list(model.trainable_variables) if variables is None else variables
    count = tf.shape(x)[0]
    seeds = (
        tf.random.experimental.stateless_split(seed, num=count) if training else tf.zeros([count, 2], dtype=tf.int64)
    )

    def one(args: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
        xi, yi, si = args
        with tf.GradientTape() as tape:
            logits = forward(model, xi[tf.newaxis], training=training, seed=si).logits
            loss = loss_fn(yi[tf.newaxis], logits)[0]
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return loss, logits[0], grads

    losses, logits, grads = tf.vectorized_map(one, (x, y, tf.cast(seeds, tf.int64)))
    return PerExample(losses=losses, logits=logits, gradients=tuple(grads))
