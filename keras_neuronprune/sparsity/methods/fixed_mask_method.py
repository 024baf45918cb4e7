"""`FixedMaskMethod`: train with the masks the model already has."""

import keras

from keras_neuronprune.sparsity.methods.base_method import BaseMethod


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class FixedMaskMethod(BaseMethod):
    """Keeps every mask as it is; pruned weights stay exactly zero.

    Used by `keras_neuronprune.sparsity.reinitialize` for the Scratch-E /
    Scratch-B baselines of an unstructured-pruned model (same sparse
    connectivity, fresh weights), and usable directly as
    `WeightPruningController(method="fixed")` to fine-tune a sparse model.

    It has no hyper-parameters.

    Example:
    ```python
    controller = WeightPruningController(method=FixedMaskMethod())
    ```

    Reference:
        Liu et al., "Rethinking the Value of Network Pruning",
        arXiv:1810.05270.
    """

    name = "fixed"
    uses_schedule = False
    supports_patterns = False
    needs_sparsity = False
