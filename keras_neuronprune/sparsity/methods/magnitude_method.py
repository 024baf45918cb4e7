"""`MagnitudeMethod`: iterative magnitude pruning (Han et al. 2015)."""

import keras
import numpy as np

from keras_neuronprune.sparsity.methods.base_method import BaseMethod
from keras_neuronprune.sparsity.methods.base_method import magnitude_scores
from keras_neuronprune.utils.validation import check_choice
from keras_neuronprune.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MagnitudeMethod(BaseMethod):
    """Prunes the smallest `|w|` whenever the schedule says so.

    Two thresholds:

    * `threshold="fraction"` (tfmot's `prune_low_magnitude`): at every
      pruning step of the schedule, each layer keeps its largest weights so
      that its sparsity reaches the schedule's value (per layer for
      `distribution="uniform"` or `"erk"`, one global ranking for
      `"global"`). Block and m-by-n patterns apply.
    * `threshold="std"` (Han et al.): at every pruning step, the weights
      with `|w| < quality * std(W_l)` are pruned, `W_l` being the layer's
      current masked kernel (pruned zeros included, as the zeroed weights
      of the original Caffe code were). The resulting sparsity is not set
      in advance; the schedule only decides when pruning happens.

    Pruned weights never come back (their score is -inf), and the weights
    that survive keep their trained values (no re-initialisation).

    Args:
        threshold: `"fraction"` (default) or `"std"`.
        quality: with `threshold="std"`, the multiple of the layer's weight
            standard deviation below which weights go (> 0, required).

    Raises:
        ValueError: for a bad `threshold` or `quality`.

    Example:
    ```python
    pruned = keras_neuronprune.sparsity.prune_weights(
        model, method=MagnitudeMethod(threshold="std", quality=0.8))
    ```

    Reference:
        Han et al., "Learning both Weights and Connections for Efficient
        Neural Networks", arXiv:1506.02626; Zhu & Gupta, "To prune, or not
        to prune", arXiv:1710.01878 (schedule).
    """

    name = "magnitude"

    def __init__(self, threshold="fraction", quality=None):
        super().__init__()
        self.threshold = check_choice(
            threshold, "threshold", ("fraction", "std")
        )
        self.quality = None
        if threshold == "std":
            if quality is None:
                raise ValueError(
                    "threshold='std' prunes |w| < quality * std(W): give "
                    "`quality` (> 0). Received: quality=None"
                )
            self.quality = check_positive(quality, "quality")
        elif quality is not None:
            raise ValueError(
                "`quality` only applies to threshold='std'. "
                f"Received: quality={quality!r}"
            )

    @property
    def sets_sparsity(self):
        return self.threshold == "std"

    @property
    def supports_patterns(self):
        return self.threshold == "fraction"

    def on_train_batch_begin(self, context, step):
        should_prune, sparsity = context.schedule_at(step)
        if not should_prune:
            return
        if self.threshold == "std":
            masks = {}
            for name, layer in context.layers:
                kernel = layer.masked_kernel()
                limit = self.quality * float(np.std(kernel))
                masks[name] = layer.current_mask() * (
                    np.abs(kernel) >= limit
                ).astype("float32")
        else:
            scores = {
                name: magnitude_scores(layer) for name, layer in context.layers
            }
            masks = context.select(scores, sparsity)
        context.apply_masks(masks)
