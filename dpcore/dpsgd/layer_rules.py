"""The per-example gradient rules, one per Keras layer class: the registry the fast clipping path reads.

For a layer whose output is z = f(recorded, weights) with g_i = dloss_i/dz_i from one backward pass, a
rule gives every example's squared gradient norm and the weight gradient for any output gradient,
without one backward pass per example ("ghost" or fast gradient clipping, as in TensorFlow Privacy's
layer registry and Opacus's grad samplers). Because backpropagation is linear in g, the gradient of
sum_i c_i loss_i is the rule's weight gradient with g_i scaled by c_i.

A rule has three parts:
  pre_activation(layer, inputs) -> (z, recorded): the layer's output before its activation, computed
      from its variables, and the tensor (the input, or the normalised input) the other two parts need;
  squared_norms(layer, recorded, g) -> (batch,): each example's squared gradient norm over the layer's
      trainable variables;
  weight_gradients(layer, recorded, g) -> ((variable, gradient), ...): the summed weight gradient for
      the output gradient g (scaled per example by the caller).
A rule may add per_example_gradients(layer, recorded, g) -> ((variable, batch-first gradients), ...) or
None: every example's own gradients where its norms are cheapest through them (convolutions); the
caller then takes norms and the clipped sum from those and needs no second weight gradient.
``applies(layer)`` says which configurations of the class the rule covers; a layer it does not cover
sends its model to the generic per-example path, which is correct for any layer that acts per example.
Lookup is by exact class: a subclass may change what ``call`` computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import tensorflow as tf

# A Keras layer (tf.keras.layers.Layer); TensorFlow ships no type information, so it is Any to mypy.
Layer = Any
VariableGradients = tuple[tuple[tf.Variable, tf.Tensor], ...]


@dataclass(frozen=True)
class LayerRule:
    """How one layer class gives per-example squared norms and weight gradients from (recorded, g)."""

    applies: Callable[[Layer], bool]
    pre_activation: Callable[[Layer, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
    squared_norms: Callable[[Layer, tf.Tensor, tf.Tensor], tf.Tensor]
    weight_gradients: Callable[[Layer, tf.Tensor, tf.Tensor], VariableGradients]
    per_example_gradients: Optional[Callable[[Layer, tf.Tensor, tf.Tensor], Optional[VariableGradients]]] = None


RULES: dict[type, LayerRule] = {}


def register(layer_class: type, rule: LayerRule) -> None:
    """Make ``rule`` the per-example rule of ``layer_class`` (exact class; replaces any earlier rule)."""
    RULES[layer_class] = rule


def rule_for(layer: Layer) -> Optional[LayerRule]:
    """The rule for ``layer``'s exact class when it covers this configuration, else None."""
    rule = RULES.get(type(layer))
    return rule if rule is not None and rule.applies(layer) else None


def activate(layer: Layer, z: tf.Tensor) -> tf.Tensor:
    """The layer's output from its pre-activation output (layers without an activation return z)."""
    activation = getattr(layer, "activation", None)
    return z if activation is None else activation(z)


def _float32(layer: Layer) -> bool:
    return layer.compute_dtype == "float32" and layer.dtype == "float32"


# -- Dense and Conv2D: z = a W + b -----------------------------------------------------------------


def _is_conv2d(layer: Layer) -> bool:
    return isinstance(layer, tf.keras.layers.Conv2D)


def _dense_applies(layer: Layer) -> bool:
    return _float32(layer)


def _conv2d_applies(layer: Layer) -> bool:
    return layer.data_format == "channels_last" and layer.groups == 1 and _float32(layer)


def _linear_pre_activation(layer: Layer, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A Dense or Conv2D layer's output before its activation, computed from its variables."""
    if _is_conv2d(layer):
        z = tf.nn.conv2d(
            h, layer.kernel, strides=layer.strides, padding=layer.padding.upper(), dilations=layer.dilation_rate
        )
    elif h.shape.rank > 2:
        z = tf.tensordot(h, layer.kernel, [[h.shape.rank - 1], [0]])
    else:
        z = tf.matmul(h, layer.kernel)
    return (z + layer.bias if layer.use_bias else z), h


def _linear_squared_norms(layer: Layer, a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    if not _is_conv2d(layer) and a.shape.rank == 2:
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


def _is_single_channel_conv(layer: Layer, a: tf.Tensor) -> bool:
    return _is_conv2d(layer) and a.shape[-1] == 1 and tuple(layer.dilation_rate) == (1, 1)


def _single_channel_conv_squared_norms(layer: Layer, a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.square(_single_channel_conv_kernels(layer, a, g)), axis=[0, 1, 3])


def _single_channel_conv_kernels(layer: Layer, a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """Per-example kernel gradients of a conv on one-channel images, (kh, kw, batch, filters), all in one
    depthwise filter gradient.

    With the batch moved into the channel axis, a depthwise convolution's filter gradient is every
    example's own kernel gradient; on greyscale first layers this is far cheaper than extracting
    patches (whose size is the kernel area times the output size).
    """
    batch = tf.shape(a)[0]
    kh, kw = layer.kernel_size
    _, oh, ow, channels = g.shape
    images = tf.transpose(a, [3, 1, 2, 0])  # (1, height, width, batch)
    grads = tf.reshape(tf.transpose(g, [1, 2, 0, 3]), [1, oh, ow, batch * channels])
    return tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
        input=images,
        filter_sizes=tf.stack([kh, kw, batch, channels]),
        out_backprop=grads,
        strides=[1, *layer.strides, 1],
        padding=layer.padding.upper(),
        data_format="NHWC",
    )


def _conv2d_per_example_gradients(layer: Layer, a: tf.Tensor, g: tf.Tensor) -> Optional[VariableGradients]:
    """Every example's kernel and bias gradients, batch first, where the norms materialise them anyway:
    for one-channel inputs from one depthwise filter gradient, else the receptive fields times g per
    example; None where Gram matrices give the norms more cheaply.

    Their weighted sum is the clipped sum, which spares the filter gradient over the batch (about as
    costly as the per-example kernels themselves).
    """
    if _is_single_channel_conv(layer, a):
        kernels = tf.transpose(_single_channel_conv_kernels(layer, a, g), [2, 0, 1, 3])
    else:
        fields, grads = _positions(layer, a, g)
        if _gram_is_cheaper(fields, grads):
            return None
        kernels = tf.matmul(fields, grads, transpose_a=True)  # (batch, kh*kw*in, out), kernel order
    grads = ((layer.kernel, tf.reshape(kernels, [-1, *layer.kernel.shape])),)
    if layer.use_bias:
        grads += ((layer.bias, tf.reduce_sum(g, axis=[1, 2])),)
    return grads


def _positions(layer: Layer, a: tf.Tensor, g: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Inputs and output gradients as (batch, positions, features) for a layer applied per position
    (the number of positions static where g's shape says it)."""
    if _is_conv2d(layer):
        a = _patches(layer, a, output_size=(g.shape[1], g.shape[2]))
    known = g.shape[1:-1]
    positions = known.num_elements() if known.is_fully_defined() else -1
    return (
        tf.reshape(a, [tf.shape(a)[0], positions, a.shape[-1]]),
        tf.reshape(g, [tf.shape(g)[0], positions, g.shape[-1]]),
    )


def _patches(layer: Layer, a: tf.Tensor, *, output_size: tuple[int, int]) -> tf.Tensor:
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


def _gram_is_cheaper(a: tf.Tensor, g: tf.Tensor) -> bool:
    """Whether Gram matrices of (batch, positions, features) ``a`` and ``g`` take fewer multiplications
    than each example's sum_p a_p g_p^T (positions must be static)."""
    positions, k, c = a.shape[1], a.shape[2], g.shape[2]
    return positions is not None and positions * positions * (k + c) < positions * k * c


def _positional_squared_norms(a: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """||sum_p a_p g_p^T||^2 per example; materialised or via Gram matrices, whichever is cheaper."""
    if _gram_is_cheaper(a, g):
        gram_a = tf.matmul(a, a, transpose_b=True)
        gram_g = tf.matmul(g, g, transpose_b=True)
        return tf.reduce_sum(gram_a * gram_g, axis=[1, 2])
    per_example = tf.matmul(a, g, transpose_a=True)
    return tf.reduce_sum(tf.square(per_example), axis=[1, 2])


def _linear_weight_gradients(layer: Layer, a: tf.Tensor, g: tf.Tensor) -> VariableGradients:
    if _is_conv2d(layer):
        kernel = tf.raw_ops.Conv2DBackpropFilter(
            input=a,
            filter_sizes=tf.shape(layer.kernel),
            out_backprop=g,
            strides=[1, *layer.strides, 1],
            padding=layer.padding.upper(),
            dilations=[1, *layer.dilation_rate, 1],
            data_format="NHWC",
        )
    else:
        kernel = tf.matmul(tf.reshape(a, [-1, a.shape[-1]]), tf.reshape(g, [-1, g.shape[-1]]), transpose_a=True)
    grads = ((layer.kernel, kernel),)
    if layer.use_bias:
        grads += ((layer.bias, tf.reduce_sum(tf.reshape(g, [-1, g.shape[-1]]), axis=0)),)
    return grads


# -- LayerNormalization and GroupNormalization: z = xhat * gamma + beta ----------------------------
#
# The normalised input xhat depends on one example only, so example i's gamma gradient is
# g_i * xhat_i and its beta gradient g_i, each summed over the axes gamma is broadcast along.


def _param_axes(layer: Layer, rank: int) -> list[int]:
    """The input axes gamma and beta run along (the others, batch included, are broadcast)."""
    if isinstance(layer, tf.keras.layers.GroupNormalization):
        return [rank - 1]
    return [axis % rank for axis in layer.axis]


def _affine_parts(layer: Layer, xhat: tf.Tensor, g: tf.Tensor) -> list[tuple[tf.Variable, tf.Tensor]]:
    """Each example's gamma and beta gradients, (batch, *variable shape), for the variables it has."""
    summed = [axis for axis in range(1, g.shape.rank) if axis not in _param_axes(layer, g.shape.rank)]
    parts = []
    if layer.scale:
        parts.append((layer.gamma, tf.reduce_sum(g * xhat, axis=summed)))
    if layer.center:
        parts.append((layer.beta, tf.reduce_sum(g, axis=summed)))
    return parts


def _affine_pre_activation(layer: Layer, xhat: tf.Tensor) -> tf.Tensor:
    rank = xhat.shape.rank
    shape = [1] * rank
    for axis in _param_axes(layer, rank):
        shape[axis] = xhat.shape[axis]
    z = xhat * tf.reshape(layer.gamma, shape) if layer.scale else xhat
    return z + tf.reshape(layer.beta, shape) if layer.center else z


def _affine_squared_norms(layer: Layer, xhat: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    return tf.add_n(
        [
            tf.reduce_sum(tf.reshape(tf.square(part), [tf.shape(part)[0], -1]), axis=1)
            for _, part in _affine_parts(layer, xhat, g)
        ]
    )


def _affine_weight_gradients(layer: Layer, xhat: tf.Tensor, g: tf.Tensor) -> VariableGradients:
    return tuple((variable, tf.reduce_sum(part, axis=0)) for variable, part in _affine_parts(layer, xhat, g))


def _normalizes_with_weights(layer: Layer) -> bool:
    return (layer.scale or layer.center) and _float32(layer)


def _layer_norm_applies(layer: Layer) -> bool:
    # Keras reshapes (does not transpose) gamma for an unsorted axis list; leave that to the generic path.
    return _normalizes_with_weights(layer) and list(layer.axis) == sorted(layer.axis)


def _layer_norm_pre_activation(layer: Layer, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    h = tf.cast(h, tf.float32)
    mean, variance = tf.nn.moments(h, layer.axis, keepdims=True)
    xhat = (h - mean) * tf.math.rsqrt(variance + layer.epsilon)
    return _affine_pre_activation(layer, xhat), xhat


def _group_norm_applies(layer: Layer) -> bool:
    return _normalizes_with_weights(layer) and layer.axis == -1


def _group_norm_pre_activation(layer: Layer, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Channels (last axis) in ``groups`` groups, each normalised over its channels and all positions."""
    h = tf.cast(h, tf.float32)
    channels, rank = h.shape[-1], h.shape.rank
    grouped = tf.reshape(h, tf.concat([tf.shape(h)[:-1], [layer.groups, channels // layer.groups]], axis=0))
    axes = [axis for axis in range(1, rank + 1) if axis != rank - 1]
    mean, variance = tf.nn.moments(grouped, axes, keepdims=True)
    xhat = tf.reshape((grouped - mean) * tf.math.rsqrt(variance + layer.epsilon), tf.shape(h))
    return _affine_pre_activation(layer, xhat), xhat


# -- Embedding: z = W[ids] ---------------------------------------------------------------------------


def _embedding_applies(layer: Layer) -> bool:
    # A mask (mask_zero) must reach the next layer through Keras's call; leave that to the generic path.
    return not layer.mask_zero and not layer.sparse and _float32(layer)


def _ids(h: tf.Tensor) -> tf.Tensor:
    return h if h.dtype in (tf.int32, tf.int64) else tf.cast(h, tf.int32)


def _embedding_pre_activation(layer: Layer, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    ids = _ids(h)
    return tf.gather(layer.embeddings, ids), ids


def _embedding_squared_norms(layer: Layer, ids: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """||sum over positions with the same id of g||^2, summed over the ids each example uses.

    Positions that share an id add up before the square, so one (example, id) key per row: the
    rows of g are summed per key, squared, and the squares summed per example.
    """
    batch = tf.shape(ids)[0]
    flat_ids = tf.cast(tf.reshape(ids, [batch, -1]), tf.int64)
    example = tf.broadcast_to(tf.range(tf.cast(batch, tf.int64))[:, None], tf.shape(flat_ids))
    keys, key_index = tf.unique(tf.reshape(example * layer.input_dim + flat_ids, [-1]))
    rows = tf.math.unsorted_segment_sum(tf.reshape(g, [-1, g.shape[-1]]), key_index, tf.size(keys))
    return tf.math.unsorted_segment_sum(tf.reduce_sum(tf.square(rows), axis=1), keys // layer.input_dim, batch)


def _embedding_weight_gradients(layer: Layer, ids: tf.Tensor, g: tf.Tensor) -> VariableGradients:
    rows = tf.math.unsorted_segment_sum(tf.reshape(g, [-1, g.shape[-1]]), tf.reshape(ids, [-1]), layer.input_dim)
    return ((layer.embeddings, rows),)


# (layer class, applies, pre_activation, squared_norms, weight_gradients[, per_example_gradients])
for _rule in (
    (tf.keras.layers.Dense, _dense_applies, _linear_pre_activation, _linear_squared_norms, _linear_weight_gradients),
    (
        tf.keras.layers.Conv2D,
        _conv2d_applies,
        _linear_pre_activation,
        _linear_squared_norms,
        _linear_weight_gradients,
        _conv2d_per_example_gradients,
    ),
    (
        tf.keras.layers.LayerNormalization,
        _layer_norm_applies,
        _layer_norm_pre_activation,
        _affine_squared_norms,
        _affine_weight_gradients,
    ),
    (
        tf.keras.layers.GroupNormalization,
        _group_norm_applies,
        _group_norm_pre_activation,
        _affine_squared_norms,
        _affine_weight_gradients,
    ),
    (
        tf.keras.layers.Embedding,
        _embedding_applies,
        _embedding_pre_activation,
        _embedding_squared_norms,
        _embedding_weight_gradients,
    ),
):
    register(_rule[0], LayerRule(*_rule[1:]))
