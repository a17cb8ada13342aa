"""Per-example gradient norms and reweighted gradient sums, cheaply, for Dense and Conv2D layers.

For a layer z = a W + b, example i's weight gradient is a_i^T g_i, where g_i = dloss_i/dz_i. One
forward pass that records every layer's input a and pre-activation output z, and one backward pass
for g, give every example's gradient norm without materialising the gradients ("ghost" or fast
gradient clipping): ||a_i|| ||g_i|| for a Dense layer on vectors, and for inputs with positions
(Conv2D patches, Dense on sequences) either the materialised per-example gradient or the Gram-matrix
form, whichever costs fewer multiplications. Because backpropagation is linear in g, the gradient of
sum_i c_i loss_i is the usual weight gradient with g_i scaled by c_i; no second backward pass.

Models with other trainable layers use a generic vectorised path (tf.vectorized_map over examples).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


import numpy as np
import tensorflow as tf

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclass(frozen=True)
class Tap:
    """One Dense or Conv2D layer's input and pre-activation output in a recorded forward pass."""

    layer: tf.keras.layers.Layer
    inputs: tf.Tensor
    outputs: tf.Tensor


@dataclass(frozen=True)
class Forward:
    """Logits of a forward pass and the taps of its Dense and Conv2D layers."""

    logits: tf.Tensor
    taps: tuple[Tap, ...]


def _is_dense(layer: tf.keras.layers.Layer) -> bool:
    return type(layer) is tf.keras.layers.Dense


def _is_conv2d(layer: tf.keras.layers.Layer) -> bool:
    return (type(layer) is tf.keras.layers.Conv2D and layer.data_format == "channels_last"
            and layer.groups == 1)


def _has_rule(layer: tf.keras.layers.Layer) -> bool:
    return _is_dense(layer) or _is_conv2d(layer)


def supports_fast_path(model: tf.keras.Model) -> bool:
    """True when every trainable layer of a Sequential model has a per-example norm rule here."""
    if not isinstance(model, tf.keras.Sequential):
        return False
    return all(_has_rule(layer) or not layer.trainable_weights for layer in model.layers)


def forward(model: tf.keras.Model, x: tf.Tensor, *, training: bool, seed: tf.Tensor) -> Forward:
    """Run ``model`` on ``x`` recording Dense/Conv2D taps; dropout masks come from ``seed``.

    Dense and Conv2D layers are computed from their variables here so that their pre-activation
    output can be tapped; dropout uses stateless masks so that a step can be replayed exactly.
    A model that is not Sequential is called as a whole (no taps).
    """
    if not isinstance(model, tf.keras.Sequential):
        return Forward(logits=model(x, training=training), taps=())
    taps = []
    h = x
    for index, layer in enumerate(model.layers):
        if _has_rule(layer) and layer.trainable:
            z = _pre_activation(layer, h)
            taps.append(Tap(layer=layer, inputs=h, outputs=z))
            h = layer.activation(z)
        elif isinstance(layer, tf.keras.layers.Dropout):
            if training and layer.rate > 0:
                h = tf.nn.experimental.stateless_dropout(
                    h, rate=layer.rate, seed=tf.random.experimental.stateless_fold_in(seed, index),
                    noise_shape=layer.noise_shape,
                )
        else:
            h = layer(h, training=training)
    return Forward(logits=h, taps=tuple(taps))


def _pre_activation(layer: tf.keras.layers.Layer, h: tf.Tensor) -> tf.Tensor:
    """A Dense or Conv2D layer's output before its activation, computed from its variables."""
    if _is_conv2d(layer):
        z = tf.nn.conv2d(h, layer.kernel, strides=layer.strides, padding=layer.padding.upper(),
                         dilations=layer.dilation_rate)
    elif h.shape.rank > 2:
        z = tf.tensordot(h, layer.kernel, [[h.shape.rank - 1], [0]])
    else:
        z = tf.matmul(h, layer.kernel)
    return z + layer.bias if layer.use_bias else z


# -- per-example norms ----------------------------------------------------------------------------


def squared_norms(taps: tuple[Tap, ...], output_grads: list[tf.Tensor]) -> tf.Tensor:
    """Each example's squared gradient norm over all tapped layers' variables, shape (batch,)."""
    total = None
    for tap, g in zip(taps, output_grads):
        sq = _layer_squared_norms(tap, g)
        total = sq if total is None else total + sq
    return total


def _layer_squared_norms(tap: Tap, g: tf.Tensor) -> tf.Tensor:
    layer, a = tap.layer, tap.inputs
    if _is_dense(layer) and a.shape.rank == 2:
        g_sq = tf.reduce_sum(tf.square(g), axis=1)
        sq = tf.reduce_sum(tf.square(a), axis=1) * g_sq
        return sq + g_sq if layer.use_bias else sq
    if _is_single_channel_conv(layer, a):
        sq = _single_channel_conv_squared_norms(layer, a, g)
    else:
        sq = _positional_squared_norms(*_positions(layer, a, g))
    if layer.use_bias:
        sq = sq + tf.reduce_sum(tf.square(tf.reduce_sum(g, axis=list(range(1, g.shape.rank - 1)))), axis=1)
    return sq


def _is_single_channel_conv(layer: tf.keras.layers.Layer, a: tf.Tensor) -> bool:
    return _is_conv2d(layer) and a.shape[-1] == 1 and tuple(layer.dilation_rate) == (1, 1)


def _single_channel_conv_squared_norms(layer: tf.keras.layers.Layer, a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """Per-example kernel gradients of a conv on one-channel images, all in one depthwise filter gradient.

    With the batch moved into the channel axis, a depthwise convolution's filter gradient is every
    example's own kernel gradient; on greyscale first layers this is far cheaper than extracting
    patches (whose size is the kernel area times the output size).
    """
    batch = tf.shape(a)[0]
    kh, kw = layer.kernel_size
    _, oh, ow, channels = g.shape
    images = tf.transpose(a, [3, 1, 2, 0])  # (1, height, width, batch)
    grads = tf.reshape(tf.transpose(g, [1, 2, 0, 3]), [1, oh, ow, batch * channels])
    kernels = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
        input=images, filter_sizes=tf.stack([kh, kw, batch, channels]), out_backprop=grads,
        strides=[1, *layer.strides, 1], padding=layer.padding.upper(), data_format="NHWC",
    )
    return tf.reduce_sum(tf.square(kernels), axis=[0, 1, 3])


def _positions(layer: tf.keras.layers.Layer, a: tf.Tensor, g: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Inputs and output gradients as (batch, positions, features) for a layer applied per position."""
    if _is_conv2d(layer):
        a = _patches(layer, a, output_size=(g.shape[1], g.shape[2]))
    return (tf.reshape(a, [tf.shape(a)[0], -1, a.shape[-1]]), tf.reshape(g, [tf.shape(g)[0], -1, g.shape[-1]]))


def _patches(layer: tf.keras.layers.Layer, a: tf.Tensor, *, output_size: tuple[int, int]) -> tf.Tensor:
    """Each output position's receptive field, (batch, positions, kh*kw*channels) in kernel order.

    One gather with a precomputed index is about twice as fast here as tf.image.extract_patches.
    """
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    oh, ow = output_size
    if layer.padding == "same":
        pad_h = max((oh - 1) * sh + (kh - 1) * dh + 1 - a.shape[1], 0)
        pad_w = max((ow - 1) * sw + (kw - 1) * dw + 1 - a.shape[2], 0)
        a = tf.pad(a, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])
    height, width, channels = a.shape[1], a.shape[2], a.shape[3]
    rows = (np.arange(oh) * sh)[:, None, None, None] + (np.arange(kh) * dh)[None, None, :, None]
    cols = (np.arange(ow) * sw)[None, :, None, None] + (np.arange(kw) * dw)[None, None, None, :]
    index = (rows * width + cols).reshape(-1).astype(np.int32)  # (oh, ow, kh, kw) flattened
    fields = tf.gather(tf.reshape(a, [-1, height * width, channels]), index, axis=1)
    return tf.reshape(fields, [-1, oh * ow, kh * kw * channels])


def _positional_squared_norms(a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """||sum_p a_p g_p^T||^2 per example; materialised or via Gram matrices, whichever is cheaper."""
    positions, k, c = a.shape[1], a.shape[2], g.shape[2]
    if positions is not None and positions * positions * (k + c) < positions * k * c:
        gram_a = tf.matmul(a, a, transpose_b=True)
        gram_g = tf.matmul(g, g, transpose_b=True)
        return tf.reduce_sum(gram_a * gram_g, axis=[1, 2])
    per_example = tf.matmul(a, g, transpose_a=True)
    return tf.reduce_sum(tf.square(per_example), axis=[1, 2])


# -- reweighted sums -------------------------------------------------------------------------------


def weighted_gradients(taps: tuple[Tap, ...], output_grads: list[tf.Tensor],
                       weights: tf.Tensor) -> dict[int, tf.Tensor]:
    """Gradient of sum_i weights_i * loss_i for every tapped variable, keyed by id(variable)."""
    grads: dict[int, tf.Tensor] = {}
    for tap, g in zip(taps, output_grads):
        layer, a = tap.layer, tap.inputs
        w = tf.reshape(weights, [-1] + [1] * (g.shape.rank - 1))
        gw = g * w
        if _is_conv2d(layer):
            grads[id(layer.kernel)] = tf.raw_ops.Conv2DBackpropFilter(
                input=a, filter_sizes=tf.shape(layer.kernel), out_backprop=gw,
                strides=[1, *layer.strides, 1], padding=layer.padding.upper(),
                dilations=[1, *layer.dilation_rate, 1], data_format="NHWC",
            )
        else:
            a2 = tf.reshape(a, [-1, a.shape[-1]])
            grads[id(layer.kernel)] = tf.matmul(a2, tf.reshape(gw, [-1, gw.shape[-1]]), transpose_a=True)
        if layer.use_bias:
            grads[id(layer.bias)] = tf.reduce_sum(tf.reshape(gw, [-1, gw.shape[-1]]), axis=0)
    return grads


# -- generic path --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerExample:
    """Per-example losses, logits and gradients (one tensor per variable, batch axis first)."""

    losses: tf.Tensor
    logits: tf.Tensor
    gradients: tuple[tf.Tensor, ...]


def per_example_gradients(model: tf.keras.Model, loss_fn: LossFn, x: tf.Tensor, y: tf.Tensor, *,
                          training: bool, seed: tf.Tensor,
                          variables: Optional[list[tf.Variable]] = None) -> PerExample:
    """Every example's own gradient, computed with tf.vectorized_map; works for any layer."""
    variables = list(model.trainable_variables) if variables is None else variables
    count = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=count) if training else \
        tf.zeros([count, 2], dtype=tf.int64)

    def one(args: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
        xi, yi, si = args
        with tf.GradientTape() as tape:
            logits = forward(model, xi[tf.newaxis], training=training, seed=si).logits
            loss = loss_fn(yi[tf.newaxis], logits)[0]
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return loss, logits[0], grads

    losses, logits, grads = tf.vectorized_map(one, (x, y, tf.cast(seeds, tf.int64)))
    return PerExample(losses=losses, logits=logits, gradients=tuple(grads))
