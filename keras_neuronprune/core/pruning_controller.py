"""Base class of the objects that drive pruning during `model.fit`."""

import keras


class PruningController:
    """Drives pruning of a `PrunedModel` while it trains.

    `prune_structured` (channel pruning) and `prune_weights` (weight-level
    sparsity) each return a `PrunedModel` that carries one controller. The
    callbacks `UpdatePruning` and `PruningSummaries` only talk to the model's
    controller through the hooks below, so both kinds of pruning share them.

    All state that must survive `.keras` saving and `BackupAndRestore`
    (masks, importance accumulators) lives in layer weights of the model;
    the schedule step lives in `PrunedModel.pruning_step`. The controller
    itself holds only configuration (returned by `get_config`), so it is
    rebuilt from the saved config and re-attached on load.

    Subclasses register themselves with
    `keras.saving.register_keras_serializable(package="keras_neuronprune")`.
    """

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # Training hooks, called by `keras_neuronprune.callbacks.UpdatePruning`.
    def on_train_begin(self, model):
        """Called once when `fit` starts (find layers, check state)."""

    def on_train_batch_begin(self, model, step):
        """Called before every training batch; `step` is the pruning step."""

    def on_train_batch_end(self, model, step, logs=None):
        """Called after every training batch (accumulate scores, prune)."""

    def on_epoch_end(self, model, epoch, logs=None):
        """Called after every epoch."""

    # Reporting, used by `PruningSummaries` and the progress bar.
    def summary_scalars(self, model):
        """Returns a dict name -> float (e.g. sparsity, params, flops)."""
        return {}

    def importance_histograms(self, model):
        """Returns a dict name -> 1-D numpy array of importances."""
        return {}

    def strip(self, model, check=True):
        """Returns the final plain Keras model (no pruning layers).

        The one way to strip: `keras_neuronprune.strip_pruning` and the
        exporters call it.

        Args:
            model: the `PrunedModel` this controller drives.
            check: compare the result with `model` on random inputs where
                stripping can change the outputs, and raise if they differ.
        """
        raise NotImplementedError


def serialize_controller(controller):
    return keras.saving.serialize_keras_object(controller)


def deserialize_controller(config):
    return keras.saving.deserialize_keras_object(config)
