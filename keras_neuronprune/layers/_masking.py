"""Mask plumbing shared by the masked layers (private).

Every masked layer subclasses a Keras layer and mixes in `MaskedLayerMixin`.
The masks are non-trainable float variables (1 = keep, 0 = removed), so they
are saved with the model, restored by `BackupAndRestore` and ignored by the
optimizer. Masks are never part of the layer config: the config of a masked
layer is exactly its parent's, which is what makes stripping
`Parent.from_config(layer.get_config())` plus `layer.stripped_weights()`.
"""

import numpy as np
from keras import ops

OUTPUT_MASK = "output_mask"
INPUT_MASK = "input_mask"
MASK_WEIGHT_NAMES = (OUTPUT_MASK, INPUT_MASK)


def broadcast_channels(vector, rank, axis):
    """Reshapes a per-channel vector so it broadcasts on `axis` of a tensor."""
    axis = axis % rank
    shape = [1] * rank
    shape[axis] = -1
    return ops.reshape(vector, shape)


def short_name(variable):
    return variable.name.split("/")[-1]


class MaskedLayerMixin:
    """Adds `output_mask` / `input_mask` variables and the helpers around them.

    Subclasses set `parent_class` (the Keras layer they extend) and
    `has_input_mask` (True for layers that mix channels), and describe the
    kernels to fold on stripping with `_kernel_axes()`:
    `{weight_name: (input_axis or None, output_axis or None)}`.
    """

    parent_class = None
    has_input_mask = False

    def _add_masks(self, in_channels, out_channels):
        self.output_mask = self.add_weight(
            shape=(int(out_channels),),
            initializer="ones",
            trainable=False,
            name=OUTPUT_MASK,
        )
        if self.has_input_mask:
            self.input_mask = self.add_weight(
                shape=(int(in_channels),),
                initializer="ones",
                trainable=False,
                name=INPUT_MASK,
            )
        else:
            self.input_mask = None

    def _mask_variables(self):
        return [v for v in (self.output_mask, self.input_mask) if v is not None]

    def _channel_axis(self):
        if getattr(self, "data_format", "channels_last") == "channels_first":
            return 1
        return -1

    def _mask_outputs(self, outputs):
        mask = ops.cast(self.output_mask, outputs.dtype)
        rank = len(outputs.shape)
        return outputs * broadcast_channels(mask, rank, self._channel_axis())

    def _kernel_axes(self):
        return {}

    # ------------------------------------------------------------------
    # Helpers used by the pruning controller and by strip_pruning.
    def set_output_mask(self, mask):
        """Sets `output_mask` from a 0/1 (or boolean) array of its length."""
        self.output_mask.assign(as_mask(mask, self.output_mask, "mask"))

    def set_input_mask(self, mask):
        """Sets `input_mask` from a 0/1 (or boolean) array of its length."""
        if self.input_mask is None:
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) has no "
                "`input_mask`; it does not mix channels."
            )
        self.input_mask.assign(as_mask(mask, self.input_mask, "mask"))

    def stripped_weights(self):
        """The parent layer's weights with the masks folded in.

        Kernels are multiplied by the input mask on their input axis and by
        the output mask on their output axis; biases (and other per-output
        vectors listed by the subclass) by the output mask. The result
        loads into `parent_class.from_config(self.get_config())`. It equals
        the masked layer exactly when the activation maps 0 to 0 (relu,
        linear, tanh...); otherwise remove the masked channels physically
        (`thin_model`) instead of only stripping.

        Returns:
            A list of NumPy arrays in the parent's weight order.
        """
        out_mask = np.asarray(self.output_mask.numpy())
        in_mask = None
        if self.input_mask is not None:
            in_mask = np.asarray(self.input_mask.numpy())
        axes = self._kernel_axes()
        weights = []
        for variable in self.weights:
            name = short_name(variable)
            if name in MASK_WEIGHT_NAMES:
                continue
            value = np.array(variable.numpy())
            in_axis, out_axis = axes.get(name, (None, None))
            if in_axis is not None and in_mask is not None:
                value = value * _kernel_input_mask(
                    in_mask, value.shape, in_axis, out_axis, self
                )
            if out_axis is not None:
                shape = [1] * value.ndim
                shape[out_axis] = -1
                value = value * out_mask.reshape(shape)
            weights.append(value)
        return weights

    def to_parent(self):
        """Returns a built parent-class layer carrying `stripped_weights()`.

        The new layer has the same name and config; it is not connected to
        any model.
        """
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' must be built before it can be stripped."
            )
        layer = self.parent_class.from_config(self.get_config())
        layer.build_from_config(self.get_build_config())
        layer.set_weights(self.stripped_weights())
        return layer


def as_mask(mask, variable, argument):
    arr = np.asarray(mask, dtype="float32").reshape(-1)
    if arr.shape != tuple(variable.shape):
        raise ValueError(
            f"`{argument}` must have shape {tuple(variable.shape)}. "
            f"Received: {argument} with shape {np.shape(mask)}"
        )
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(
            f"`{argument}` must hold only 0 and 1. Received values "
            f"{np.unique(arr)[:5].tolist()}"
        )
    return arr


def _kernel_input_mask(in_mask, shape, in_axis, out_axis, layer):
    """Broadcastable per-kernel-entry factor for a (grouped) input mask."""
    groups = int(getattr(layer, "groups", 1) or 1)
    rank = len(shape)
    if groups == 1 or out_axis is None:
        full = [1] * rank
        full[in_axis] = -1
        return in_mask.reshape(full)
    in_g = shape[in_axis]
    out_g = shape[out_axis] // groups
    # Output channel o of conv-group o // out_g reads input channels
    # (o // out_g) * in_g + j for j in range(in_g).
    per_group = in_mask.reshape(groups, in_g).T
    matrix = np.repeat(per_group, out_g, axis=1)
    full = [1] * rank
    full[in_axis] = in_g
    full[out_axis] = groups * out_g
    return matrix.reshape(full)


def grouped_kernel_input_mask(in_mask, in_g, out_channels, groups):
    """`keras.ops` version of the grouped-conv input mask: shape (in_g, out).

    Entry `[j, o]` is the mask of the full input channel that kernel row `j`
    of output `o` reads.
    """
    out_g = out_channels // groups
    per_group = ops.transpose(ops.reshape(in_mask, (groups, in_g)))
    return ops.repeat(per_group, out_g, axis=1)
