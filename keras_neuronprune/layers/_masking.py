"""The one masked-layer base: channel masks and an optional kernel mask.

Every masked layer subclasses a Keras layer and mixes in
`MaskedLayerMixin` (through a small per-family mixin that says how many
channels there are and how the forward pass runs). Two kinds of mask, both
non-trainable float variables (1 = keep, 0 = removed), saved with the model
and restored by `BackupAndRestore`:

- channel masks (structured pruning): `output_mask` over the output
  channels, multiplied into the output, and, for layers that mix channels,
  `input_mask` over the input channels, multiplied into the kernel's input
  axis. A masked channel is then equivalent to a removed one.
- a kernel mask (weight sparsity, `use_kernel_mask=True`): `kernel_mask`
  of the kernel's shape, multiplied element-wise into the kernel; with
  `learned_mask=True` a trainable score whose step is the mask.

Where each weight's channels are is described once, by the family's
`kernel_axes` (`{weight_name: KernelAxes(input, output)}`); masking,
stripping and `num_output_axes` all read it, and the masked-layer registry
reports it. Channel masks are never part of the config; with the kernel
mask off the config of a masked layer is exactly its parent's.
"""

from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from keras_neuronprune.layers._kernel_mask import KERNEL_MASK
from keras_neuronprune.layers._kernel_mask import KERNEL_MASK_NAMES
from keras_neuronprune.layers._kernel_mask import MASK_FROZEN
from keras_neuronprune.layers._kernel_mask import MASK_PENALTY
from keras_neuronprune.layers._kernel_mask import MASK_SCORE
from keras_neuronprune.layers._kernel_mask import make_mask_ste

OUTPUT_MASK = "output_mask"
INPUT_MASK = "input_mask"
CHANNEL_MASK_NAMES = (OUTPUT_MASK, INPUT_MASK, "head_mask")
MASK_WEIGHT_NAMES = CHANNEL_MASK_NAMES + KERNEL_MASK_NAMES
KERNEL_MASK_OPTIONS = (
    "learned_mask",
    "mask_init",
    "mask_penalty",
    "normalize_mask_gradients",
)


class KernelAxes(NamedTuple):
    """Where a weight's channels are.

    Attributes:
        input: the axis indexing input channels (folded with `input_mask`),
            or None.
        output: the axes indexing output channels (folded with
            `output_mask`; more than one where an output channel is a
            position on several axes, as `(in, multiplier)` in a depthwise
            kernel), or `()`.
    """

    input: object = None
    output: tuple = ()


def broadcast_channels(vector, rank, axis):
    """Reshapes a per-channel vector so it broadcasts on `axis` of a tensor."""
    axis = axis % rank
    shape = [1] * rank
    shape[axis] = -1
    return ops.reshape(vector, shape)


def short_name(variable):
    return variable.name.split("/")[-1]


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


def input_mask_factor(mask, shape, axes, groups=1):
    """Broadcastable factor putting a per-input-channel mask on a weight.

    With `groups > 1` (grouped convolution) the weight's input axis holds
    `in_channels // groups` entries, and entry `[j, o]` gets the mask of the
    full input channel that kernel row `j` of output `o` reads.

    Args:
        mask: tensor `(in_channels,)`.
        shape: the weight's shape.
        axes: the weight's `KernelAxes`.
        groups: the layer's convolution groups.

    Returns:
        A tensor that broadcasts against the weight.
    """
    rank = len(shape)
    if groups == 1 or not axes.output:
        return broadcast_channels(mask, rank, axes.input)
    in_axis, out_axis = axes.input % rank, axes.output[-1] % rank
    in_g, out = int(shape[in_axis]), int(shape[out_axis])
    # Output channel o of conv-group o // out_g reads input channels
    # (o // out_g) * in_g + j for j in range(in_g).
    per_group = ops.transpose(ops.reshape(mask, (groups, in_g)))
    matrix = ops.repeat(per_group, out // groups, axis=1)
    full = [1] * rank
    full[in_axis], full[out_axis] = in_g, out
    return ops.reshape(matrix, full)


def output_mask_factor(mask, shape, axes):
    """NumPy factor putting a per-output-channel mask on a weight."""
    full = [1] * len(shape)
    for axis in axes.output:
        full[axis] = shape[axis]
    return mask.reshape(full)


class MaskedLayerMixin:
    """The masked-layer base: channel masks and an optional kernel mask.

    A masked layer lists a family mixin first (itself a subclass of this
    one) and its Keras layer second, e.g. `class MaskedDense(
    MaskedDenseMixin, keras.layers.Dense)`, and sets `parent_class`. The
    family mixin sets `kernel_axes`, `has_input_mask` (True for layers that
    mix channels), `kernel_name` (the weight a kernel mask covers, or None)
    and implements `_mask_channels(input_shape) -> (in, out)` and `call`
    (the parent's forward pass with `self._masked_weight(name)`, ending in
    `self._finish(outputs)`).

    Channel masks (`output_mask`, `input_mask`) exist unless the class sets
    `use_channel_masks = False` (the weight-sparsity spellings
    `WeightMasked*`). The kernel mask exists with `use_kernel_mask=True`:
    fixed masks (magnitude, SNIP, RigL, ISS-P, NNrelief) are the
    non-trainable `kernel_mask`; learned masks (`learned_mask=True`, Sparse
    Connectivity Learning) add a trainable real-valued score
    `kernel_mask_score` whose step is the mask (straight-through gradient),
    a non-trainable connection-count penalty weight `mask_penalty` and a
    non-trainable `mask_frozen` flag; once frozen the layer uses
    `kernel_mask` like a fixed-mask layer.

    Args:
        use_kernel_mask: add the element mask on the kernel (default: the
            class's `kernel_mask_default`, False for `Masked*`).
        learned_mask: learn the kernel mask instead of holding a fixed one.
        mask_init: initial value of the learned mask scores (a connection
            is kept while its score is > 0).
        mask_penalty: initial weight of the connection-count penalty (its
            gradient is added to the mask scores') when `learned_mask=True`.
        normalize_mask_gradients: divide the mask-score gradients of every
            output feature by their root mean square.
        *args, **kwargs: the arguments of the parent Keras layer.

    Raises:
        ValueError: for a kernel mask on a layer without a kernel, a learned
            mask without a kernel mask, or a kernel mask with LoRA.

    Reference:
        Han et al., "Learning both Weights and Connections for Efficient
        Neural Networks", arXiv:1506.02626 (kernel x mask formulation).
    """

    parent_class = None
    has_input_mask = False
    use_channel_masks = True
    kernel_mask_default = False
    kernel_name = "kernel"
    kernel_axes = {}
    num_output_axes = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        axes = cls.kernel_axes.get(cls.kernel_name) if cls.kernel_name else None
        cls.num_output_axes = len(axes.output) if axes else 0

    def __init__(
        self,
        *args,
        use_kernel_mask=None,
        learned_mask=False,
        mask_init=0.05,
        mask_penalty=0.0,
        normalize_mask_gradients=True,
        **kwargs,
    ):
        if use_kernel_mask is None:
            use_kernel_mask = self.kernel_mask_default
        name = type(self).__name__
        if use_kernel_mask and self.kernel_name is None:
            raise ValueError(
                f"{name} has no kernel to mask element-wise. "
                f"Received: use_kernel_mask={use_kernel_mask!r}"
            )
        if learned_mask and not use_kernel_mask:
            raise ValueError(
                "`learned_mask=True` needs `use_kernel_mask=True`. "
                f"Received: learned_mask={learned_mask!r}, "
                f"use_kernel_mask={use_kernel_mask!r}"
            )
        if use_kernel_mask and kwargs.get("lora_rank"):
            raise ValueError(
                f"{name} does not support LoRA with a kernel mask. "
                f"Received: lora_rank={kwargs['lora_rank']!r}"
            )
        super().__init__(*args, **kwargs)
        self.use_kernel_mask = bool(use_kernel_mask)
        self.learned_mask = bool(learned_mask)
        self.mask_init = float(mask_init)
        self.mask_penalty = float(mask_penalty)
        self.normalize_mask_gradients = bool(normalize_mask_gradients)

    def build(self, input_shape):
        super().build(input_shape)
        self.output_mask = None
        self.input_mask = None
        if self.use_channel_masks:
            in_channels, out_channels = self._mask_channels(input_shape)
            self.output_mask = self._ones(OUTPUT_MASK, (int(out_channels),))
            if self.has_input_mask:
                self.input_mask = self._ones(INPUT_MASK, (int(in_channels),))
        if self.use_kernel_mask:
            self._add_kernel_mask()

    def _ones(self, name, shape):
        return self.add_weight(
            name=name, shape=shape, initializer="ones", trainable=False
        )

    def _add_kernel_mask(self):
        shape = tuple(self.kernel_variable.shape)
        self.kernel_mask = self._ones(KERNEL_MASK, shape)
        if not self.learned_mask:
            return
        self.kernel_mask_score = self.add_weight(
            name=MASK_SCORE,
            shape=shape,
            initializer=keras.initializers.Constant(self.mask_init),
            trainable=True,
        )
        self.mask_penalty_weight = self.add_weight(
            name=MASK_PENALTY,
            shape=(),
            initializer=keras.initializers.Constant(self.mask_penalty),
            trainable=False,
        )
        self.mask_frozen = self.add_weight(
            name=MASK_FROZEN, shape=(), initializer="zeros", trainable=False
        )
        reduce_axes = tuple(range(len(shape) - self.num_output_axes))
        self._mask_ste = make_mask_ste(
            reduce_axes, self.normalize_mask_gradients
        )

    def _mask_channels(self, input_shape):
        raise NotImplementedError

    def _channel_axis(self):
        if getattr(self, "data_format", "channels_last") == "channels_first":
            return 1
        return -1

    # ------------------------------------------------------------------
    # Forward pass.
    @property
    def kernel_variable(self):
        """The raw (unmasked) kernel variable."""
        kernel = self.__dict__.get("_kernel")
        if kernel is None:
            kernel = self.__dict__.get("kernel")
        if kernel is None:
            kernel = getattr(self, "_kernel", None)
        return kernel

    def effective_mask(self):
        """The kernel mask the forward pass multiplies with (a tensor)."""
        mask = ops.convert_to_tensor(self.kernel_mask)
        if not self.learned_mask:
            return mask
        # `ops.copy` reads the variables into tensors: a custom gradient
        # must not see variables among its inputs.
        score = ops.copy(self.kernel_mask_score)
        frozen = ops.cast(ops.copy(self.mask_frozen), mask.dtype)
        penalty = ops.copy(self.mask_penalty_weight)
        learned = self._mask_ste(score, penalty * (1.0 - frozen))
        return frozen * mask + (1.0 - frozen) * ops.cast(learned, mask.dtype)

    def _masked_weight(self, name):
        """Weight `name` as the forward pass uses it (masks applied)."""
        if name == self.kernel_name and self.use_kernel_mask:
            value = ops.convert_to_tensor(self.kernel_variable)
            value = value * ops.cast(self.effective_mask(), value.dtype)
        else:
            value = getattr(self, name)
        axes = self.kernel_axes.get(name)
        if self.input_mask is not None and axes and axes.input is not None:
            mask = ops.cast(self.input_mask, value.dtype)
            value = value * input_mask_factor(
                mask, value.shape, axes, self._groups()
            )
        return value

    def _groups(self):
        return int(getattr(self, "groups", 1) or 1)

    def _finish(self, outputs):
        """Bias, activation and output mask, as the parent layers do."""
        if getattr(self, "bias", None) is not None:
            bias = broadcast_channels(
                self.bias, len(outputs.shape), self._channel_axis()
            )
            outputs = ops.add(outputs, bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return self._mask_outputs(outputs)

    def _mask_outputs(self, outputs):
        if self.output_mask is None:
            return outputs
        mask = ops.cast(self.output_mask, outputs.dtype)
        rank = len(outputs.shape)
        return outputs * broadcast_channels(mask, rank, self._channel_axis())

    # ------------------------------------------------------------------
    # Helpers used by the controllers, the methods and the strip functions.
    def set_output_mask(self, mask):
        """Sets `output_mask` from a 0/1 (or boolean) array of its length."""
        self._mask_variable(OUTPUT_MASK).assign(
            as_mask(mask, self.output_mask, "mask")
        )

    def set_input_mask(self, mask):
        """Sets `input_mask` from a 0/1 (or boolean) array of its length."""
        self._mask_variable(INPUT_MASK).assign(
            as_mask(mask, self.input_mask, "mask")
        )

    def _mask_variable(self, name):
        variable = getattr(self, name, None)
        if variable is None:
            reason = (
                "it does not mix channels"
                if name == INPUT_MASK and self.use_channel_masks
                else "it has no channel masks"
            )
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) has no "
                f"`{name}`; {reason}."
            )
        return variable

    def current_mask(self):
        """The binary kernel mask in effect now, as a NumPy array."""
        if self.learned_mask and float(self.mask_frozen.numpy()) < 0.5:
            return (np.asarray(self.kernel_mask_score.numpy()) > 0).astype(
                "float32"
            )
        return np.asarray(self.kernel_mask.numpy(), dtype="float32")

    def masked_kernel(self):
        """The kernel the layer uses (kernel and input masks) as NumPy."""
        kernel = np.asarray(self.kernel_variable.numpy())
        return self._fold(self.kernel_name, kernel, self._numpy_mask(False))

    def stripped_weights(self):
        """The parent layer's weights with the masks folded in.

        The kernel is multiplied by the kernel mask; every weight listed in
        `kernel_axes` by the input mask on its input axis and by the output
        mask on its output axes. The result loads into
        `parent_class.from_config(self.parent_config())`. It equals the
        masked layer exactly when the activation maps 0 to 0 (relu, linear,
        tanh...); otherwise remove the masked channels physically
        (`thin_model`) instead of only stripping.

        Returns:
            A list of NumPy arrays in the parent's weight order.
        """
        masks = self._numpy_mask(True)
        return [
            self._fold(short_name(v), np.array(v.numpy()), masks)
            for v in self.weights
            if short_name(v) not in MASK_WEIGHT_NAMES
        ]

    def _numpy_mask(self, with_output):
        out_mask = self.output_mask if with_output else None
        return tuple(
            None if v is None else np.asarray(v.numpy())
            for v in (self.input_mask, out_mask)
        )

    def _fold(self, name, value, masks):
        in_mask, out_mask = masks
        if name == self.kernel_name and self.use_kernel_mask:
            value = value * self.current_mask().astype(value.dtype)
        axes = self.kernel_axes.get(name)
        if axes is None:
            return value
        if in_mask is not None and axes.input is not None:
            mask = ops.convert_to_tensor(in_mask)
            factor = input_mask_factor(mask, value.shape, axes, self._groups())
            value = value * ops.convert_to_numpy(factor).astype(value.dtype)
        if out_mask is not None and axes.output:
            value = value * output_mask_factor(out_mask, value.shape, axes)
        return value

    def parent_config(self):
        """The config of the equivalent plain Keras layer."""
        config = self.get_config()
        for key in ("use_kernel_mask",) + KERNEL_MASK_OPTIONS:
            config.pop(key, None)
        return config

    def to_parent(self):
        """Returns a built parent-class layer carrying `stripped_weights()`.

        The new layer has the same name and config; it is not connected to
        any model.
        """
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' must be built before it can be stripped."
            )
        layer = self.parent_class.from_config(self.parent_config())
        layer.build_from_config(self.get_build_config())
        layer.set_weights(self.stripped_weights())
        return layer

    def get_config(self):
        config = super().get_config()
        if self.use_kernel_mask != self.kernel_mask_default:
            config["use_kernel_mask"] = self.use_kernel_mask
        if self.use_kernel_mask:
            config.update({k: getattr(self, k) for k in KERNEL_MASK_OPTIONS})
        return config

    # Dense and BaseConv save only kernel and bias; the generic Layer
    # implementation saves every variable (parent's first, then the masks),
    # which is also the order the earlier releases wrote.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)
