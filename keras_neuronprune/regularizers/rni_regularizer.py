"""`RNIRegularizer`: the receding-neuron-importance penalty of RNI.

Attach it to the raw `gamma` of every `BoundedBatchNormalization`
(`gamma_regularizer=RNIRegularizer()` or criterion `"rni"`'s
`regularizer_for`). It pushes only the already-weak neurons towards 0 and
leaves the strong ones alone, so importances become bimodal and a global
threshold separates them.
"""

import keras
from keras import ops

from keras_neuronprune.utils.validation import check_finite
from keras_neuronprune.utils.validation import check_non_negative


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class RNIRegularizer(keras.regularizers.Regularizer):
    """`strength * sum(s * (1 - ln s))` with `s = sigmoid(gamma + shift)`.

    The penalty increases with `s`, so gradient descent always lowers
    `gamma`, but its gradient `dR/dgamma = -ln(s) * s * (1 - s)` vanishes
    both for `s -> 1` (important neurons, left alone) and `s -> 0`, and
    peaks at `s ~ 0.236`, i.e. at importance `sigmoid(gamma) ~ 0.015` for
    `shift=3`: weak neurons recede, strong ones are kept. Computed with
    `log_sigmoid` for numerical stability. Defaults are the official code's
    README example (`strength=1e-4`, `shift=3`); the paper's VGG-16 runs use
    `strength=1e-3, shift=3`, ResNet-56 `strength=1e-4, shift=0`.

    Args:
        strength: the penalty weight lambda (>= 0).
        shift: the offset `b` added to `gamma` inside the sigmoid.

    Example:

    ```python
    bn = keras_neuronprune.layers.BoundedBatchNormalization(
        gamma_regularizer=keras_neuronprune.regularizers.RNIRegularizer(
            strength=1e-4, shift=3.0))
    ```

    Reference:
        Suteu and Guo, "Receding Neuron Importances for Structured
        Pruning", arXiv:2204.06404.
    """

    def __init__(self, strength=1e-4, shift=3.0):
        self.strength = check_non_negative(strength, "strength")
        self.shift = check_finite(shift, "shift")
        # Set to 0 by the `"rni"` criterion once the model is pruned, so
        # that fine-tuning runs without the penalty (read by the graph, not
        # part of the config).
        self.factor = keras.Variable(
            1.0, trainable=False, dtype="float32", name="rni_factor"
        )

    def __call__(self, x):
        log_s = ops.log_sigmoid(ops.cast(x, "float32") + self.shift)
        penalty = ops.sum(ops.exp(log_s) * (1.0 - log_s))
        return self.strength * ops.convert_to_tensor(self.factor) * penalty

    def get_config(self):
        return {"strength": self.strength, "shift": self.shift}
