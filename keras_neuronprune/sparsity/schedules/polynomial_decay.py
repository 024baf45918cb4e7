"""`PolynomialDecay` for weight sparsity, with tfmot's argument names."""

import keras

from keras_neuronprune.schedules import polynomial_decay


@keras.saving.register_keras_serializable(
    package="keras_neuronprune", name="SparsityPolynomialDecay"
)
class PolynomialDecay(polynomial_decay.PolynomialDecay):
    """Gradual weight pruning along a polynomial curve (Zhu & Gupta, 2017).

    tfmot's `PolynomialDecay` with the same arguments: the sparsity
    (fraction of zero weights) goes from `initial_sparsity` at
    `begin_step` to `final_sparsity` at `end_step` as
    `final + (initial - final) * (1 - p) ** power`. It is the channel
    schedule `keras_neuronprune.schedules.PolynomialDecay` under the
    weight-side vocabulary; the one difference from tfmot is
    `prune_at_end_step=True` (masks are also updated at `end_step` when it
    is off the `frequency` grid, so the final sparsity is reached).

    Args:
        initial_sparsity: sparsity at `begin_step`.
        final_sparsity: sparsity at `end_step`; None takes the `sparsity`
            given to `prune_weights`.
        begin_step: first pruning step.
        end_step: last pruning step (> `begin_step`).
        power: exponent of the curve.
        frequency: steps between two mask updates.
        prune_at_end_step: also update the masks at `end_step` when it is
            not on the `frequency` grid.

    Example:
    ```python
    schedule = keras_neuronprune.sparsity.schedules.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=0.8, begin_step=0,
        end_step=2000, frequency=100,
    )
    ```

    Reference:
        Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of
        pruning for model compression", arXiv:1710.01878.
    """

    # Configs written with the channel names load as well.
    _RENAMED = {
        "initial_pruning_ratio": "initial_sparsity",
        "final_pruning_ratio": "final_sparsity",
    }
    _FINAL_KEY = "final_sparsity"

    def __init__(
        self,
        initial_sparsity=0.0,
        final_sparsity=None,
        begin_step=0,
        end_step=1000,
        power=3,
        frequency=100,
        prune_at_end_step=True,
    ):
        super().__init__(
            initial_pruning_ratio=initial_sparsity,
            final_pruning_ratio=final_sparsity,
            begin_step=begin_step,
            end_step=end_step,
            power=power,
            frequency=frequency,
            prune_at_end_step=prune_at_end_step,
        )

    @property
    def initial_sparsity(self):
        return self.initial_ratio

    @property
    def final_sparsity(self):
        return self.final_ratio

    def get_config(self):
        config = super().get_config()
        return {
            "initial_sparsity": config.pop("initial_pruning_ratio"),
            "final_sparsity": config.pop("final_pruning_ratio"),
            **config,
        }
