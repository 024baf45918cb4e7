"""`BoundedBatchNormalization` (RNI's "SigBN"): BatchNorm with scale in (0, 1).

Used for Receding Neuron Importances: swap every BatchNormalization of a
model for this layer (`BoundedBatchNormalization.from_batch_normalization`),
train with the RNI regulariser (`keras_neuronprune.regularizers.
RNIRegularizer`) on `gamma`, read the importances `sigmoid(gamma)`
(`layer.importances()`, criterion `"rni"`), remove channels with
`channel_mask` / physically, and finally either keep the layer or turn it
into a plain `BatchNormalization` (`layer.to_batch_normalization()`).
`BoundedBatchNorm` is the same class.
"""

import keras
import numpy as np
from keras import ops

from keras_neuronprune.layers._gradient_scale import GradientScaledRegularizer
from keras_neuronprune.layers._gradient_scale import scale_gradient
from keras_neuronprune.layers._masking import as_mask

_GAMMA_MAPPINGS = ("centered", "relative", "clip", "constant")
_EXCLUDED_PARENT_KEYS = (
    "scale",
    "renorm",
    "renorm_clipping",
    "renorm_momentum",
)


def _logit(p):
    return np.log(p) - np.log1p(-p)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class BoundedBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalisation whose per-channel scale is `sigmoid(gamma)`.

    `y_c = sigmoid(gamma_c) * (x_c - mean_c) / sqrt(var_c + epsilon)
    [+ beta_c]`, times `channel_mask_c`. The scale is bounded in (0, 1), so
    `sigmoid(gamma_c)` is a neuron importance comparable across layers.
    Mean and variance are the batch statistics in training and the moving
    averages (updated like `BatchNormalization`) in inference. By default
    there is no shift (`center=False`), as in the authors' code.

    Defaults follow the official RNI code where it matters for pruning:

    - `gamma` starts from N(0, 1) (the paper's initialisation); pass
      `gamma_initializer="zeros"` for importances of 0.5 everywhere.
    - `gamma_gradient_scale=10`: the gradient reaching `gamma` (from the
      loss and from `gamma_regularizer`) is multiplied by 10, the paper's
      10x learning rate on the SigBN parameters under SGD (see
      `_gradient_scale`); the forward pass is unchanged. Use 1 to disable.
    - No weight decay on `gamma`: `gamma_regularizer` defaults to None, and
      decoupled weight decay of the optimizer is switched off for it with
      `exclude_bounded_scales_from_weight_decay(optimizer, model)`.
    - `momentum` and `epsilon` keep the Keras defaults (0.99, 1e-3); the
      PyTorch code's values are `momentum=0.9, epsilon=1e-5`.

    `channel_mask` is a non-trainable 0/1 float vector (ones) multiplied
    into scale and shift, so a removed channel outputs exactly 0.

    Args:
        axis: the channel axis.
        momentum: momentum of the moving mean and variance.
        epsilon: added to the variance.
        center: add a learned shift `beta`.
        gamma_initializer: initializer of the raw scale; None means
            `RandomNormal(0, 1)`.
        beta_initializer: initializer of `beta`.
        moving_mean_initializer: initializer of the moving mean.
        moving_variance_initializer: initializer of the moving variance.
        gamma_regularizer: regulariser on the raw `gamma` (e.g.
            `RNIRegularizer`); its gradient is scaled like the loss's.
        beta_regularizer: regulariser on `beta`.
        gamma_constraint: constraint on `gamma`.
        beta_constraint: constraint on `beta`.
        gamma_gradient_scale: positive factor on `gamma`'s gradient.
        synchronized: synchronise batch statistics across replicas (TF).
        **kwargs: base layer arguments (`name`, `dtype`...).

    Call arguments:
        inputs: input tensor of any rank.
        training: use batch statistics and update the moving ones.
        mask: optional mask of rank `inputs.rank - 1` for the statistics.

    Example:

    ```python
    bn = keras_neuronprune.layers.BoundedBatchNormalization(
        gamma_regularizer=keras_neuronprune.regularizers.RNIRegularizer())
    y = bn(x, training=True)
    importances = bn.importances()  # sigmoid(gamma) * channel_mask
    ```

    Reference:
        Suteu and Guo, "Receding Neuron Importances for Structured
        Pruning", arXiv:2204.06404.
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=False,
        gamma_initializer=None,
        beta_initializer="zeros",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        gamma_regularizer=None,
        beta_regularizer=None,
        gamma_constraint=None,
        beta_constraint=None,
        gamma_gradient_scale=10.0,
        synchronized=False,
        **kwargs,
    ):
        if gamma_initializer is None:
            gamma_initializer = keras.initializers.RandomNormal(0.0, 1.0)
        try:
            gamma_gradient_scale = float(gamma_gradient_scale)
        except (TypeError, ValueError):
            gamma_gradient_scale = float("nan")
        if not gamma_gradient_scale > 0:
            raise ValueError(
                "`gamma_gradient_scale` must be a positive number. "
                f"Received: gamma_gradient_scale={gamma_gradient_scale!r}"
            )
        super().__init__(
            axis=axis,
            momentum=momentum,
            epsilon=epsilon,
            center=center,
            scale=True,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            moving_mean_initializer=moving_mean_initializer,
            moving_variance_initializer=moving_variance_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            synchronized=synchronized,
            **kwargs,
        )
        self.gamma_gradient_scale = gamma_gradient_scale
        self.channel_mask = None

    def build(self, input_shape):
        super().build(input_shape)
        self.channel_mask = self.add_weight(
            shape=(input_shape[self.axis],),
            initializer="ones",
            trainable=False,
            name="channel_mask",
            autocast=False,
        )
        self.set_gamma_regularizer(self.gamma_regularizer)

    def set_gamma_regularizer(self, regularizer):
        """Attaches a regulariser to `gamma`, before or after `build`.

        The penalty's gradient is scaled by `gamma_gradient_scale` like the
        loss gradient. The regulariser is part of the layer config.
        """
        self.gamma_regularizer = keras.regularizers.get(regularizer)
        if self.gamma is None:
            return
        if self.gamma_regularizer is None:
            self.gamma.regularizer = None
        else:
            self.gamma.regularizer = GradientScaledRegularizer(
                self.gamma_regularizer, self.gamma_gradient_scale
            )

    def bounded_scale(self):
        """`sigmoid(gamma) * channel_mask` as a tensor (gradient-scaled)."""
        gamma = scale_gradient(self.gamma, self.gamma_gradient_scale)
        return ops.sigmoid(gamma) * self.channel_mask

    def importances(self):
        """NumPy `sigmoid(gamma) * channel_mask`, the RNI importances."""
        gamma = np.asarray(self.gamma.numpy(), "float64")
        mask = np.asarray(self.channel_mask.numpy(), "float64")
        return mask / (1.0 + np.exp(-gamma))

    def set_output_mask(self, mask):
        """Sets `channel_mask` from a 0/1 (or boolean) array."""
        self.channel_mask.assign(as_mask(mask, self.channel_mask, "mask"))

    def call(self, inputs, training=None, mask=None):
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                "The mask provided should be one dimension less than the "
                f"inputs. Received: mask.shape={mask.shape}, "
                f"inputs.shape={inputs.shape}"
            )
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        # Statistics in float32 even under mixed precision, as Keras BN.
        inputs = ops.cast(inputs, compute_dtype)
        moving_mean = ops.cast(self.moving_mean, compute_dtype)
        moving_variance = ops.cast(self.moving_variance, compute_dtype)
        if training and self.trainable:
            mean, variance = self._moments(inputs, mask)
            self.moving_mean.assign(
                moving_mean * self.momentum + mean * (1.0 - self.momentum)
            )
            self.moving_variance.assign(
                moving_variance * self.momentum
                + variance * (1.0 - self.momentum)
            )
        else:
            mean, variance = moving_mean, moving_variance
        channel_mask = ops.cast(self.channel_mask, compute_dtype)
        gamma = scale_gradient(
            ops.cast(self.gamma, compute_dtype), self.gamma_gradient_scale
        )
        scale = ops.sigmoid(gamma) * channel_mask
        offset = None
        if self.center:
            offset = ops.cast(self.beta, compute_dtype) * channel_mask
        outputs = ops.batch_normalization(
            x=inputs,
            mean=mean,
            variance=variance,
            axis=self.axis,
            offset=offset,
            scale=scale,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        for key in _EXCLUDED_PARENT_KEYS:
            config.pop(key, None)
        config["gamma_gradient_scale"] = self.gamma_gradient_scale
        return config

    @classmethod
    def from_batch_normalization(
        cls,
        bn_layer,
        gamma_mapping="relative",
        center=None,
        gamma_gradient_scale=10.0,
        gamma_regularizer=None,
        bound=1e-3,
        momentum=None,
    ):
        """Builds a `BoundedBatchNormalization` to swap in for a trained BN.

        The moving mean and variance, `axis`, `momentum`, `epsilon`, `name`
        and dtype policy are carried over; a `MaskedBatchNormalization`'s
        `output_mask` becomes `channel_mask`. A real-valued BN scale `g`
        cannot always be written as `sigmoid(gamma)`, so `gamma_mapping`
        says how to map it:

        - `"relative"` (default): `sigmoid(gamma) = c * |g|` and
          `beta <- c * beta` with `c = (1 - bound) / max|g|` (values below
          `bound` are raised to it). Each channel keeps its rank and
          relative scale, and the layer's output is the original one times
          `c` (exactly, for positive `g` with `c * g >= bound`): a
          following ReLU, convolution and BatchNormalization absorb such a
          per-layer factor.
        - `"clip"`: `sigmoid(gamma) = clip(|g|, bound, 1 - bound)`; exact
          when `0 < g < 1`.
        - `"constant"`: `gamma = 0` (importance 0.5 everywhere), a fresh
          start of the importances; `beta` is kept.

        The sign of a negative `g` cannot be represented (the scale is
        positive); such channels are flipped. They are rare in trained
        networks and short retraining absorbs them.

        Args:
            bn_layer: a built `keras.layers.BatchNormalization` (or subclass).
            gamma_mapping: `"relative"`, `"clip"` or `"constant"`.
            center: keep a shift; None means `bn_layer.center`.
            gamma_gradient_scale: as in the constructor.
            gamma_regularizer: as in the constructor.
            bound: clip margin for the mapped importances, in (0, 0.5).
            momentum: momentum of the moving statistics; None keeps
                `bn_layer.momentum`.

        Returns:
            A built `BoundedBatchNormalization` named like `bn_layer`.

        Raises:
            TypeError: if `bn_layer` is not a BatchNormalization.
            ValueError: for an unbuilt layer or a bad `gamma_mapping` /
                `bound`.
        """
        if not isinstance(bn_layer, keras.layers.BatchNormalization):
            raise TypeError(
                "`bn_layer` must be a keras.layers.BatchNormalization. "
                f"Received: bn_layer={bn_layer!r}"
            )
        if not bn_layer.built:
            raise ValueError(
                "`bn_layer` must be built (have weights). Received: unbuilt "
                f"layer '{bn_layer.name}'"
            )
        if gamma_mapping not in _GAMMA_MAPPINGS:
            raise ValueError(
                f"`gamma_mapping` must be one of {_GAMMA_MAPPINGS}. "
                f"Received: gamma_mapping={gamma_mapping!r}"
            )
        if not 0.0 < float(bound) < 0.5:
            raise ValueError(
                f"`bound` must be in (0, 0.5). Received: bound={bound!r}"
            )
        if isinstance(bn_layer, BoundedBatchNormalization):
            g = bn_layer.importances()
            gamma_mapping = "clip"
        elif bn_layer.scale:
            g = np.asarray(bn_layer.gamma.numpy(), "float64")
        else:
            g = np.ones(bn_layer.moving_mean.shape, "float64")
        if center is None:
            center = bool(bn_layer.center)
        beta = None
        if bn_layer.center:
            beta = np.asarray(bn_layer.beta.numpy(), "float64")
        magnitude = np.abs(g)
        if gamma_mapping in ("relative", "centered"):
            if gamma_mapping == "centered":
                # The median channel starts at importance 0.5, where the
                # sigmoid is not saturated and the RNI penalty has a
                # gradient; a max-to-1 mapping puts trained channels at
                # 0.9-0.97, where the penalty's gradient is ~0.
                centre = float(np.median(magnitude)) if magnitude.size else 1
                factor = 0.5 / (centre if centre > 0 else 1.0)
            else:
                peak = float(magnitude.max()) if magnitude.size else 1.0
                factor = (1.0 - bound) / (peak if peak > 0 else 1.0)
            raw = _logit(np.clip(magnitude * factor, bound, 1.0 - bound))
            if beta is not None:
                beta = beta * factor
        elif gamma_mapping == "clip":
            raw = _logit(np.clip(magnitude, bound, 1.0 - bound))
        else:
            raw = np.zeros_like(magnitude)
        layer = cls(
            axis=bn_layer.axis,
            momentum=bn_layer.momentum if momentum is None else momentum,
            epsilon=bn_layer.epsilon,
            center=center,
            gamma_gradient_scale=gamma_gradient_scale,
            gamma_regularizer=gamma_regularizer,
            beta_regularizer=bn_layer.beta_regularizer if center else None,
            synchronized=bn_layer.synchronized,
            name=bn_layer.name,
            dtype=bn_layer.dtype_policy,
            trainable=bn_layer.trainable,
        )
        layer.build_from_config(bn_layer.get_build_config())
        layer.gamma.assign(raw.astype("float32"))
        if center:
            layer.beta.assign(
                np.zeros_like(raw) if beta is None else beta.astype("float32")
            )
        layer.moving_mean.assign(bn_layer.moving_mean.numpy())
        layer.moving_variance.assign(bn_layer.moving_variance.numpy())
        for name in ("channel_mask", "output_mask"):
            source = getattr(bn_layer, name, None)
            if isinstance(source, keras.Variable):
                layer.channel_mask.assign(source.numpy())
        return layer

    def to_batch_normalization(self):
        """Returns an equivalent plain, built `BatchNormalization`.

        Its `gamma` is `sigmoid(gamma) * channel_mask` and its `beta` is
        `beta * channel_mask` (zeros and `center=False` without a shift),
        so inference outputs are identical; use it to export a model
        without custom layers.
        """
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' must be built before conversion."
            )
        layer = keras.layers.BatchNormalization(
            axis=self.axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=True,
            synchronized=self.synchronized,
            name=self.name,
            dtype=self.dtype_policy,
            trainable=self.trainable,
        )
        layer.build_from_config(self.get_build_config())
        mask = self.channel_mask.numpy()
        layer.gamma.assign(self.importances().astype("float32"))
        if self.center:
            layer.beta.assign(self.beta.numpy() * mask)
        layer.moving_mean.assign(self.moving_mean.numpy())
        layer.moving_variance.assign(self.moving_variance.numpy())
        return layer


BoundedBatchNorm = BoundedBatchNormalization


def bounded_scale_variables(model):
    """The raw `gamma` variables of every `BoundedBatchNormalization`."""
    found = []
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, BoundedBatchNormalization) and layer.built:
            found.append(layer.gamma)
        stack.extend(getattr(layer, "layers", []))
    return found


def exclude_bounded_scales_from_weight_decay(optimizer, model):
    """Excludes the bounded scales from the optimizer's weight decay.

    RNI trains the SigBN parameters without weight decay: decay would pull
    every raw `gamma` towards 0, i.e. every importance towards 0.5. Call
    before the optimizer is built (before `fit`).

    Args:
        optimizer: a `keras.optimizers.Optimizer`.
        model: the model holding `BoundedBatchNormalization` layers.

    Returns:
        The number of variables excluded.
    """
    variables = bounded_scale_variables(model)
    if variables:
        optimizer.exclude_from_weight_decay(var_list=variables)
    return len(variables)
