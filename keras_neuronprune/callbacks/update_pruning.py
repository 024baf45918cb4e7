"""`UpdatePruning`: the callback that drives pruning during `fit`."""

import keras

from keras_neuronprune.callbacks._model_check import current_step
from keras_neuronprune.callbacks._model_check import require_pruned_model


class UpdatePruning(keras.callbacks.Callback):
    """Steps the pruning schedule of a `PrunedModel` while it trains.

    This callback is required when fitting a model returned by
    `keras_neuronprune.prune_structured` or `keras_neuronprune.prune_weights`
    (like tfmot's `UpdatePruningStep`). On every training batch it reads the
    model's `pruning_step`, calls the hooks of `model.controller`
    (`on_train_batch_begin`, `on_train_batch_end`, `on_epoch_end`) and then
    increments `pruning_step`. The controller decides what to do at each step
    (accumulate importance, update masks); this callback holds no pruning
    state, so a model restored by `keras.callbacks.BackupAndRestore` or
    loaded from a `.keras` file resumes where it stopped.

    After every batch it also copies the controller's headline numbers
    (`controller.summary_scalars(model)`, only the names without a "/", e.g.
    `pruning_ratio`, `params_kept`, `flops_kept`) into the batch `logs`, so
    Keras' progress bar and `History` show them.

    Args:
        show_in_logs: whether to add the headline pruning scalars to the
            batch and epoch logs (progress bar, `History`).

    Raises:
        ValueError: when `fit` starts, if the model is not a `PrunedModel`.

    Example:
    ```python
    pruned = keras_neuronprune.prune_structured(model, pruning_ratio=0.5)
    pruned.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    pruned.fit(x, y, callbacks=[keras_neuronprune.callbacks.UpdatePruning()])
    ```
    """

    def __init__(self, show_in_logs=True):
        super().__init__()
        self.show_in_logs = bool(show_in_logs)
        self._step = 0

    def _pruned_model(self):
        return require_pruned_model(self.model, type(self).__name__)

    def on_train_begin(self, logs=None):
        model = self._pruned_model()
        plan = getattr(model.controller, "plan_training", None)
        if plan is not None:
            params = self.params or {}
            epochs, steps = params.get("epochs"), params.get("steps")
            total = None if not epochs or not steps else epochs * steps
            plan(model, current_step(model), total)
        model.controller.on_train_begin(model)

    def on_train_batch_begin(self, batch, logs=None):
        model = self.model
        # Read the variable every batch: BackupAndRestore or a user may have
        # restored the weights (and so the step) since the last batch.
        self._step = current_step(model)
        model.controller.on_train_batch_begin(model, self._step)

    def on_train_batch_end(self, batch, logs=None):
        model = self.model
        model.controller.on_train_batch_end(model, self._step, logs)
        model.pruning_step.assign(self._step + 1)
        if self.show_in_logs and logs is not None:
            logs.update(_headline_scalars(model))

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        model.controller.on_epoch_end(model, epoch, logs)
        if self.show_in_logs and logs is not None:
            logs.update(_headline_scalars(model))


def _headline_scalars(model):
    scalars = model.controller.summary_scalars(model) or {}
    return {k: float(v) for k, v in scalars.items() if "/" not in k}
