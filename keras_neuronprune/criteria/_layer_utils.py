"""Reading layers and weights for the criteria (private).

The kernel helpers return effective weights: for masked layers the masks
are folded in, so channels that are already removed score 0. Member paths
are resolved with `keras_neuronprune.core.surgery.try_find_layer`.
"""

import keras
import numpy as np

from keras_neuronprune.core.surgery import try_find_layer
from keras_neuronprune.layers import BoundedBatchNormalization
from keras_neuronprune.layers._masking import MASK_WEIGHT_NAMES
from keras_neuronprune.layers._masking import MaskedLayerMixin
from keras_neuronprune.layers._masking import short_name

_TRANSPOSE = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def effective_weights(layer):
    """Dict short weight name -> NumPy array, masks folded in."""
    if isinstance(layer, MaskedLayerMixin) and layer.built:
        names = [
            short_name(w)
            for w in layer.weights
            if short_name(w) not in MASK_WEIGHT_NAMES
        ]
        return dict(zip(names, layer.stripped_weights()))
    return {short_name(w): np.asarray(w.numpy()) for w in layer.weights}


def producer_kernel(layer):
    """`(kernel, output_axis)` of a layer that creates channels, or None."""
    weights = effective_weights(layer)
    if isinstance(layer, keras.layers.SeparableConv2D):
        return weights["pointwise_kernel"], -1
    if isinstance(layer, _TRANSPOSE):
        return weights["kernel"], -2
    if isinstance(layer, (keras.layers.Dense,) + _CONV):
        return weights["kernel"], -1
    return None


def consumer_kernel_norms(layer, p):
    """Per input position sum of `|w|**p` of a channel-mixing layer, or None.

    Grouped convolutions map every full input channel to its kernel row and
    its conv-group's output columns.
    """
    weights = effective_weights(layer)
    if isinstance(layer, keras.layers.SeparableConv2D):
        return axis_power_sums(weights["depthwise_kernel"], 2, p)
    if isinstance(layer, _TRANSPOSE):
        return axis_power_sums(weights["kernel"], -1, p)
    if isinstance(layer, keras.layers.Dense):
        return axis_power_sums(weights["kernel"], 0, p)
    if isinstance(layer, _CONV):
        kernel = weights["kernel"]
        groups = int(layer.groups)
        if groups == 1:
            return axis_power_sums(kernel, -2, p)
        in_g, out = kernel.shape[-2], kernel.shape[-1]
        blocks = np.abs(kernel.reshape(-1, in_g, groups, out // groups)) ** p
        per_row_group = blocks.sum(axis=(0, 3))  # (in_g, groups)
        return per_row_group.T.reshape(-1)
    return None


def axis_power_sums(array, axis, p):
    """`sum |array|**p` over every axis but `axis` (float64)."""
    moved = np.moveaxis(np.asarray(array, "float64"), axis, 0)
    return (np.abs(moved.reshape(moved.shape[0], -1)) ** p).sum(axis=1)


def gather_positions(vector, channels):
    """Sums a per-position vector over each group channel's positions."""
    positions = np.asarray(channels).reshape(len(channels), -1)
    return np.asarray(vector, "float64")[positions].sum(axis=1)


def bn_parameters(layer):
    """`(scale, shift)` the BN applies after normalising, masks included.

    For `BoundedBatchNormalization` the scale is `sigmoid(gamma)`. Returns
    None for layers that are not BatchNormalization.
    """
    if not isinstance(layer, keras.layers.BatchNormalization):
        return None
    if not layer.built:
        return None
    size = int(layer.moving_mean.shape[0])
    if isinstance(layer, BoundedBatchNormalization):
        scale = layer.importances()
        mask = np.asarray(layer.channel_mask.numpy(), "float64")
    else:
        scale = (
            np.asarray(layer.gamma.numpy(), "float64")
            if layer.scale
            else np.ones(size)
        )
        mask = np.ones(size)
        if getattr(layer, "output_mask", None) is not None:
            mask = np.asarray(layer.output_mask.numpy(), "float64")
        scale = scale * mask
    shift = (
        np.asarray(layer.beta.numpy(), "float64") * mask
        if layer.center
        else np.zeros(size)
    )
    return scale, shift


def bn_members(group, model, bounded_only=False):
    """`(member, layer)` for the BatchNormalization outputs of a group."""
    found = []
    for member in group.members:
        if member.role != "output":
            continue
        layer = try_find_layer(model, member.layer)
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if bounded_only and not isinstance(layer, BoundedBatchNormalization):
            continue
        found.append((member, layer))
    return found


def first_positions(member):
    """Layer channel of each group channel (the first repeat)."""
    channels = np.asarray(member.channels)
    return channels.reshape(len(channels), -1)[:, 0]
