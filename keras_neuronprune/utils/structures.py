"""Which parameter entries make up one channel of a channel group.

A channel (a "structure" in SOSP's words) is removed by zeroing the filters
that produce it and the per-channel parameters of the channelwise layers it
passes through (BatchNormalization gamma and beta, depthwise filters and
biases). With those zero the channel's activation is zero, so the input
weights of the consuming layers no longer matter; they are therefore not part
of the structure and every parameter belongs to at most one structure.
"""

import dataclasses

import keras
import numpy as np

from keras_neuronprune.core.surgery import layer_by_name

_PRODUCER_WEIGHTS = ("kernel", "pointwise_kernel", "bias")
_CHANNELWISE_WEIGHTS = (
    "gamma",
    "beta",
    "bias",
    "alpha",
    "depthwise_kernel",
    "kernel",
)


@dataclasses.dataclass(eq=False)
class ParameterSlice:
    """The entries of one variable that belong to the channels of a group.

    Attributes:
        variable: the Keras variable.
        layer: name of the layer that owns it.
        shape: the shape the variable is viewed in (depthwise kernels are
            merged to `(..., channels * multiplier)`).
        axis: the channel axis in that view.
        positions: int array `(size, r)`: entries along `axis` of each group
            channel.
    """

    variable: object
    layer: str
    shape: tuple
    axis: int
    positions: np.ndarray

    def per_channel(self, array):
        """Sums `array` (variable-shaped) into one value per group channel.

        Args:
            array: array with the variable's shape (a gradient, a product
                of weights and gradients...).

        Returns:
            Float64 array `(size,)`.
        """
        view = np.reshape(np.asarray(array, "float64"), self.shape)
        view = np.moveaxis(view, self.axis, 0)
        view = view.reshape(self.shape[self.axis], -1)
        per_position = view.sum(axis=1)
        return per_position[self.positions].sum(axis=1)

    def mask(self, channel_scale):
        """Variable-shaped multiplier that scales each group channel.

        Args:
            channel_scale: array `(size,)` of factors; entries outside the
                group are 1.

        Returns:
            Float array with the variable's shape.
        """
        factors = np.ones(self.shape[self.axis])
        for k, pos in enumerate(self.positions):
            factors[pos] = channel_scale[k]
        shape = [1] * len(self.shape)
        shape[self.axis] = -1
        full = np.broadcast_to(factors.reshape(shape), self.shape)
        return np.reshape(full, tuple(self.variable.shape))


def _weight_name(variable):
    return variable.name.split("/")[-1]


def _positions(member):
    pos = np.asarray(member.channels)
    return pos.reshape(pos.shape[0], -1).astype("int64")


def structure_slices(model, group, trainable_only=True):
    """Parameter slices whose zeroing removes the group's channels.

    Args:
        model: the model holding the group's layers.
        group: a `ChannelGroup`.
        trainable_only: skip non-trainable variables (BN moving stats,
            masks).

    Returns:
        List of `ParameterSlice`, without duplicates.

    Raises:
        ValueError: when a producer has no recognisable kernel.
    """
    slices, seen = [], set()
    for member in group.members:
        if member.role != "output" or member.kind == "consumer":
            continue
        layer = layer_by_name(model, member.layer)
        positions = _positions(member)
        names = (
            _PRODUCER_WEIGHTS
            if member.kind == "producer"
            else _CHANNELWISE_WEIGHTS
        )
        found_kernel = False
        for variable in layer.weights:
            short = _weight_name(variable)
            if short not in names or (
                trainable_only and not variable.trainable
            ):
                continue
            key = (member.layer, id(variable))
            if key in seen:
                continue
            seen.add(key)
            shape = tuple(variable.shape)
            axis = len(shape) - 1
            if short in ("kernel", "pointwise_kernel"):
                found_kernel = True
                if isinstance(layer, keras.layers.DepthwiseConv2D) or (
                    short == "kernel"
                    and isinstance(layer, keras.layers.DepthwiseConv1D)
                ):
                    shape = shape[:-2] + (shape[-2] * shape[-1],)
                    axis = len(shape) - 1
                elif _is_transpose(layer):
                    axis = len(shape) - 2
            elif short == "depthwise_kernel":
                shape = shape[:-2] + (shape[-2] * shape[-1],)
                axis = len(shape) - 1
            if shape[axis] <= positions.max():
                continue
            slices.append(
                ParameterSlice(variable, member.layer, shape, axis, positions)
            )
        if member.kind == "producer" and not found_kernel:
            raise ValueError(
                f"Cannot find the kernel of producer layer {member.layer!r} "
                f"({type(layer).__name__}) of channel group {group.name!r}."
            )
    return slices


def _is_transpose(layer):
    return isinstance(
        layer,
        (
            keras.layers.Conv1DTranspose,
            keras.layers.Conv2DTranspose,
            keras.layers.Conv3DTranspose,
        ),
    )
