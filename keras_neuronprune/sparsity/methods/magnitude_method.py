"""`MagnitudeMethod`: iterative magnitude pruning (Han et al. 2015)."""

import numpy as np

from keras_neuronprune.sparsity.methods.base_method import BaseMethod
from keras_neuronprune.sparsity.methods.base_method import magnitude_scores


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

    Reference:
        Han et al., "Learning both Weights and Connections for Efficient
        Neural Networks", arXiv:1506.02626; Zhu & Gupta, "To prune, or not
        to prune", arXiv:1710.01878 (schedule).
    """

    name = "magnitude"

    def on_train_batch_begin(self, model, layers, step):
        controller = self.controller
        should_prune, sparsity = controller.schedule_at(step)
        if not should_prune:
            return
        if controller.threshold == "std":
            masks = {}
            for name, layer in layers:
                kernel = layer.masked_kernel()
                limit = controller.quality * float(np.std(kernel))
                masks[name] = layer.current_mask() * (
                    np.abs(kernel) >= limit
                ).astype("float32")
        else:
            scores = {name: magnitude_scores(layer) for name, layer in layers}
            masks = controller.masks_for(layers, scores, sparsity)
        controller.apply_masks(model, layers, masks)
