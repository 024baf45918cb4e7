"""`LowRankProjection`: LRPET's projection step as a training callback."""

import keras

from keras_neuronprune.lowrank.projection import conv_bn_pairs
from keras_neuronprune.lowrank.projection import project_layer
from keras_neuronprune.lowrank.projection import supports


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class LowRankProjection(keras.callbacks.Callback):
    """Projects Conv/Dense kernels to low rank after every epoch (LRPET).

    After each epoch (or every `every_n_steps` steps), every selected
    layer's kernel `W` (viewed as `outputs x inputs*kernel_size`) is
    rectified by the following BatchNormalization's scale, projected to
    rank `floor(n - n * prune_goal)` with energy transfer (the removed
    energy is moved to the kept singular values) and written back with the
    dense shape, so training continues on the projected weights. At the
    end, `factorize_low_rank` splits each layer into a rank-`r` k x k
    convolution followed by a 1 x 1 convolution.

    This callback modifies the model being trained, as training does.

    Args:
        prune_goal: fraction of singular values removed, in [0, 1).
        reduction_factor: factor on the removed singular values (0: hard
            truncation, LRPET's default).
        bn_rectify: rectify with the following BatchNormalization.
        layers: names of the layers to project (default: every Conv with
            `groups=1` and every Dense layer except the model's output
            layers).
        every_n_steps: project every this many training batches instead of
            at epoch ends.

    Example:
        >>> model.fit(x, y, epochs=30, callbacks=[
        ...     LowRankProjection(prune_goal=0.5)])
        >>> small, report = factorize_low_rank(model)

    Reference:
        Guo et al., "Compact Model Training by Low-Rank Projection with
        Energy Transfer", IEEE TNNLS 2024, https://arxiv.org/abs/2204.05566
    """

    def __init__(
        self,
        prune_goal=0.5,
        reduction_factor=0.0,
        bn_rectify=True,
        layers=None,
        every_n_steps=None,
    ):
        super().__init__()
        if not 0 <= prune_goal < 1:
            raise ValueError(
                "`prune_goal` must be in [0, 1). Received: "
                f"prune_goal={prune_goal}"
            )
        if not 0 <= reduction_factor <= 1:
            raise ValueError(
                "`reduction_factor` must be in [0, 1]. Received: "
                f"reduction_factor={reduction_factor}"
            )
        if every_n_steps is not None and int(every_n_steps) < 1:
            raise ValueError(
                "`every_n_steps` must be >= 1 or None. Received: "
                f"every_n_steps={every_n_steps}"
            )
        self.prune_goal = float(prune_goal)
        self.reduction_factor = float(reduction_factor)
        self.bn_rectify = bool(bn_rectify)
        self.layers = None if layers is None else list(layers)
        self.every_n_steps = every_n_steps
        self.history = []
        self._step = 0

    def targets(self, model):
        """The layers this callback projects, with their paired BN."""
        return select_layers(model, self.layers, self.bn_rectify)

    def project(self, model):
        """Projects `model`'s selected layers now; returns a dict of info."""
        info = {}
        for layer, bn in self.targets(model):
            info[layer.name] = project_layer(
                layer,
                prune_goal=self.prune_goal,
                bn=bn,
                reduction_factor=self.reduction_factor,
            )
        self.history.append(info)
        return info

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.every_n_steps and self._step % int(self.every_n_steps) == 0:
            self.project(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if not self.every_n_steps:
            self.project(self.model)

    def get_config(self):
        return {
            "prune_goal": self.prune_goal,
            "reduction_factor": self.reduction_factor,
            "bn_rectify": self.bn_rectify,
            "layers": self.layers,
            "every_n_steps": self.every_n_steps,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def select_layers(model, names=None, bn_rectify=True):
    """`[(layer, bn or None)]` for the layers LRPET handles in `model`.

    Raises:
        ValueError: when `names` lists an unknown or unsupported layer.
    """
    from keras_neuronprune.graph import _keras_graph

    functional = _keras_graph.as_functional(model)
    pairs = conv_bn_pairs(model) if bn_rectify else {}
    output_ops = {
        id(_keras_graph.tensor_producer(t)[0]) for t in functional.outputs
    }
    if names is None:
        layers = [
            layer
            for layer in functional.layers
            if supports(layer) and id(layer) not in output_ops
        ]
    else:
        layers = []
        for name in names:
            try:
                layer = functional.get_layer(name)
            except ValueError as error:
                raise ValueError(
                    "`layers` must name layers of the model. Received: "
                    f"{name!r}"
                ) from error
            if not supports(layer):
                raise ValueError(
                    f"`layers` entry {name!r} is a {type(layer).__name__}; "
                    "LRPET supports Conv1D/2D/3D with groups=1 "
                    "(channels_last) and Dense layers."
                )
            layers.append(layer)
    return [(layer, pairs.get(layer.name)) for layer in layers]
