"""`PruningSummaries`: TensorBoard scalars and histograms of pruning."""

import os

import keras
import numpy as np

from keras_neuronprune.callbacks._model_check import current_step
from keras_neuronprune.callbacks._model_check import require_pruned_model
from keras_neuronprune.utils.validation import check_int


class PruningSummaries(keras.callbacks.Callback):
    """Writes the pruning state of a `PrunedModel` to TensorBoard.

    Scalars come from `model.controller.summary_scalars(model)` (for
    structured pruning: `pruning_ratio`, `params_kept`, `flops_kept`,
    `cost/params`, `cost/flops` and `kept_channels/<group>`) and histograms from
    `model.controller.importance_histograms(model)` (per-group importance
    scores), logged under `<log_dir>/pruning` against the model's
    `pruning_step`. Use it next to `UpdatePruning`.

    TensorBoard event files are written with `tf.summary.write` (and the
    summary metadata of TensorBoard's scalar and histogram plugins, so the
    `tensorboard` package is only needed to view them, not to write them).
    TensorFlow is imported lazily when training starts; this callback is the
    only place outside `keras_neuronprune.export` and the gradient helper
    that uses TensorFlow directly, the rest of the training-time pruning
    code is backend independent.

    Args:
        log_dir: directory of the TensorBoard logs.
        update_freq: `"epoch"` to write scalars at the end of every epoch,
            or an int N to write them every N training batches (and at the
            end of every epoch).
        histogram_freq: write importance histograms every this many epochs;
            0 disables them.
        bins: number of buckets of each histogram.

    Raises:
        ValueError: for a bad argument, or when `fit` starts if the model is
            not a `PrunedModel`.

    Example:
    ```python
    callbacks = [
        keras_neuronprune.callbacks.UpdatePruning(),
        keras_neuronprune.callbacks.PruningSummaries("logs/run1"),
    ]
    pruned.fit(x, y, epochs=3, callbacks=callbacks)
    ```
    """

    def __init__(self, log_dir, update_freq="epoch", histogram_freq=1, bins=30):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise ValueError(
                "`log_dir` must be a non-empty path. "
                f"Received: log_dir={log_dir!r}"
            )
        if update_freq != "epoch" and not (
            isinstance(update_freq, int)
            and not isinstance(update_freq, bool)
            and update_freq > 0
        ):
            raise ValueError(
                "`update_freq` must be 'epoch' or a positive int. "
                f"Received: update_freq={update_freq!r}"
            )
        histogram_freq = check_int(histogram_freq, "histogram_freq", 0)
        self.bins = check_int(bins, "bins", 1)
        self.log_dir = os.fspath(log_dir)
        self.update_freq = update_freq
        self.histogram_freq = histogram_freq
        self._writer = None

    def on_train_begin(self, logs=None):
        require_pruned_model(self.model, type(self).__name__)
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self._tf = tf
        self._metadata = {
            plugin: summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(
                    plugin_name=plugin
                )
            ).SerializeToString()
            for plugin in ("scalars", "histograms")
        }
        self._writer = tf.summary.create_file_writer(
            os.path.join(self.log_dir, "pruning")
        )

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._writer is None:
            return
        # UpdatePruning has already advanced the step when it runs first.
        step = current_step(self.model)
        if step % self.update_freq == 0:
            self._write_scalars(step)

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            return
        step = current_step(self.model)
        self._write_scalars(step)
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            self._write_histograms(step)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write_scalars(self, step):
        model = self.model
        scalars = model.controller.summary_scalars(model) or {}
        with self._writer.as_default(step=step):
            for name, value in sorted(scalars.items()):
                self._tf.summary.write(
                    f"pruning/{name}",
                    self._tf.constant(float(value), "float32"),
                    metadata=self._metadata["scalars"],
                )

    def _write_histograms(self, step):
        model = self.model
        histograms = model.controller.importance_histograms(model) or {}
        with self._writer.as_default(step=step):
            for name, values in sorted(histograms.items()):
                values = np.asarray(values, dtype="float64").reshape(-1)
                if values.size:
                    self._tf.summary.write(
                        f"importance/{name}",
                        self._tf.constant(_buckets(values, self.bins)),
                        metadata=self._metadata["histograms"],
                    )


def _buckets(values, bins):
    """TensorBoard's histogram encoding: rows of (left, right, count)."""
    low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return np.stack([edges[:-1], edges[1:], counts.astype("float64")], axis=1)
