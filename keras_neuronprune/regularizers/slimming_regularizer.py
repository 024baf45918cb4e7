"""`SlimmingRegularizer`: Network Slimming's L1 penalty on BN scales.

Attach it to `BatchNormalization.gamma` (`gamma_regularizer=`, or criterion
`"bn_scale"`'s `regularizer_for`); channels whose scale is driven to 0 are
then pruned by `|gamma|`.
"""

import keras
from keras import ops

from keras_neuronprune.utils.validation import check_non_negative


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class SlimmingRegularizer(keras.regularizers.Regularizer):
    """`strength * sum(|gamma|)`, the sparsity term of Network Slimming.

    The sub-gradient `strength * sign(gamma)` is what the official code adds
    to the BN scale gradients. Defaults: `strength=1e-4` (VGG in the paper;
    `1e-5` for ResNet-164 and DenseNet-40).

    Args:
        strength: the penalty weight lambda (>= 0).

    Example:

    ```python
    bn = keras.layers.BatchNormalization(
        gamma_regularizer=keras_neuronprune.regularizers.SlimmingRegularizer())
    ```

    Reference:
        Liu et al., "Learning Efficient Convolutional Networks through
        Network Slimming", ICCV 2017, arXiv:1708.06519.
    """

    def __init__(self, strength=1e-4):
        self.strength = check_non_negative(strength, "strength")

    def __call__(self, x):
        return self.strength * ops.sum(ops.abs(x))

    def get_config(self):
        return {"strength": self.strength}
