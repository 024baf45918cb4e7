"""Element-wise kernel masks shared by every weight-masked layer."""

import keras
import numpy as np
from keras import ops

KERNEL_MASK = "kernel_mask"
MASK_SCORE = "kernel_mask_score"
MASK_PENALTY = "mask_penalty"
MASK_FROZEN = "mask_frozen"
_EPSILON = 1e-12


def _step(x):
    return ops.cast(ops.greater(x, 0.0), x.dtype)


def make_mask_ste(reduce_axes, normalize):
    """Unit step with a straight-through gradient plus a count penalty.

    Forward: `step(score)`. Backward: the identity straight-through
    estimator `dL/dscore := dL/dM`, optionally divided, for every output
    feature (neuron or filter), by the root mean square of that feature's
    incoming mask gradients, plus `penalty`: the gradient of
    `penalty * sum(step(score))` under the identity estimator. The RMS is
    this library's choice for the per-feature normalisation of Sparse
    Connectivity Learning, whose exact form is unpublished; it keeps the
    sign and relative size of a feature's gradients and gives every
    feature a gradient scale of 1, so `penalty` is measured in that unit.
    """

    @ops.custom_gradient
    def mask_ste(score, penalty):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            if normalize:
                rms = ops.sqrt(
                    ops.mean(
                        ops.square(upstream), axis=reduce_axes, keepdims=True
                    )
                )
                upstream = upstream / (rms + _EPSILON)
            return upstream + penalty, ops.zeros_like(penalty)

        return _step(score), grad

    return mask_ste


class WeightMaskedMixin:
    """Adds an element mask on the kernel of a Keras layer.

    A subclass lists the mixin first and a Keras layer second (e.g.
    `class WeightMaskedDense(WeightMaskedMixin, keras.layers.Dense)`) and
    sets `parent_class` (the Keras layer it extends) and
    `num_output_axes` (how many trailing kernel axes index an output
    feature: 1 for Dense and Conv, 2 for depthwise kernels). It implements
    `_masked_call(inputs, kernel)`, the parent's forward pass with the given
    kernel.

    Fixed masks (`learned_mask=False`, used by magnitude, SNIP, RigL, ISS-P
    and NNrelief) are one non-trainable variable `kernel_mask` of the
    kernel's shape, 1 = keep and 0 = pruned; the forward pass uses
    `kernel * kernel_mask`. Learned masks (`learned_mask=True`, Sparse
    Connectivity Learning) add a trainable real-valued score `m`
    (`kernel_mask_score`), the binary mask being `step(m)` with a
    straight-through gradient, a non-trainable connection-count penalty
    weight and a non-trainable `mask_frozen` flag; once frozen the layer
    uses `kernel_mask` like a fixed-mask layer.

    All these variables are layer weights: they are saved by `model.save`
    and `save_weights` and restored by `BackupAndRestore`.
    """

    parent_class = None
    num_output_axes = 1

    def __init__(
        self,
        *args,
        learned_mask=False,
        mask_init=0.05,
        mask_penalty=0.0,
        normalize_mask_gradients=True,
        **kwargs,
    ):
        if kwargs.get("lora_rank"):
            raise ValueError(
                f"{type(self).__name__} does not support LoRA. "
                f"Received: lora_rank={kwargs['lora_rank']!r}"
            )
        super().__init__(*args, **kwargs)
        self.learned_mask = bool(learned_mask)
        self.mask_init = float(mask_init)
        self.mask_penalty = float(mask_penalty)
        self.normalize_mask_gradients = bool(normalize_mask_gradients)

    def build(self, input_shape):
        super().build(input_shape)
        shape = tuple(self.kernel_variable.shape)
        self.kernel_mask = self.add_weight(
            name=KERNEL_MASK,
            shape=shape,
            initializer="ones",
            trainable=False,
        )
        if self.learned_mask:
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
                name=MASK_FROZEN,
                shape=(),
                initializer="zeros",
                trainable=False,
            )
            reduce_axes = tuple(range(len(shape) - self.num_output_axes))
            self._mask_ste = make_mask_ste(
                reduce_axes, self.normalize_mask_gradients
            )

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
        """The mask the forward pass multiplies the kernel with (a tensor)."""
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

    def current_mask(self):
        """The binary mask in effect now, as a NumPy array."""
        if self.learned_mask and float(self.mask_frozen.numpy()) < 0.5:
            return (np.asarray(self.kernel_mask_score.numpy()) > 0).astype(
                "float32"
            )
        return np.asarray(self.kernel_mask.numpy(), dtype="float32")

    def masked_kernel(self):
        """`kernel * mask` as a NumPy array (the weights actually used)."""
        kernel = np.asarray(self.kernel_variable.numpy())
        return kernel * self.current_mask().astype(kernel.dtype)

    def call(self, inputs, *args, **kwargs):
        kernel = ops.convert_to_tensor(self.kernel_variable)
        mask = self.effective_mask()
        kernel = kernel * ops.cast(mask, kernel.dtype)
        return self._masked_call(inputs, kernel)

    def _masked_call(self, inputs, kernel):
        raise NotImplementedError

    def _bias_and_activation(self, outputs, channel_count):
        if self.bias is not None:
            if getattr(self, "data_format", "channels_last") == (
                "channels_first"
            ):
                shape = (1, channel_count) + (1,) * (len(outputs.shape) - 2)
            else:
                shape = (1,) * (len(outputs.shape) - 1) + (channel_count,)
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    # Dense and BaseConv save only kernel and bias; the generic Layer
    # implementation saves every variable, masks included.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "learned_mask": self.learned_mask,
                "mask_init": self.mask_init,
                "mask_penalty": self.mask_penalty,
                "normalize_mask_gradients": self.normalize_mask_gradients,
            }
        )
        return config

    def parent_config(self):
        """The config of the equivalent plain Keras layer."""
        config = self.get_config()
        for key in (
            "learned_mask",
            "mask_init",
            "mask_penalty",
            "normalize_mask_gradients",
        ):
            config.pop(key, None)
        return config


def conv_masked_call(layer, inputs, kernel):
    """Forward pass of a Keras `Conv1D/2D/3D` with a given kernel."""
    padding = layer.padding
    if padding == "causal":
        inputs = ops.pad(inputs, layer._compute_causal_padding())
        padding = "valid"
    outputs = ops.conv(
        inputs,
        kernel,
        strides=list(layer.strides),
        padding=padding,
        dilation_rate=layer.dilation_rate,
        data_format=layer.data_format,
    )
    return layer._bias_and_activation(outputs, layer.filters)


def depthwise_masked_call(layer, inputs, kernel):
    """Forward pass of a Keras `DepthwiseConv1D/2D` with a given kernel."""
    outputs = ops.depthwise_conv(
        inputs,
        kernel,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        data_format=layer.data_format,
    )
    channels = int(kernel.shape[-2]) * int(kernel.shape[-1])
    return layer._bias_and_activation(outputs, channels)
