"""`LowRankProjection`: LRPET's projection step as a training callback."""

import keras

from keras_neuronprune.lowrank.projection import conv_bn_pairs
from keras_neuronprune.lowrank.projection import project_layer
from keras_neuronprune.lowrank.projection import supports
from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown
from keras_neuronprune.utils.validation import check_fraction


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class LowRankProjection(keras.callbacks.Callback):
    """Projects Conv/Dense kernels to low rank after every epoch (LRPET).

    After each epoch (or every `every_n_steps` steps), every selected
    layer's kernel `W` (viewed as `outputs x inputs*kernel_size`) is
    rectified by the following BatchNormalization's scale, projected to
    rank `floor(n - n * pruning_ratio)` with energy transfer (the removed
    energy is moved to the kept singular values) and written back with the
    dense shape, so training continues on the projected weights. At the
    end, `factorize_low_rank` splits each layer into a rank-`r` k x k
    convolution followed by a 1 x 1 convolution.

    This callback modifies the model being trained, as training does.

    Args:
        pruning_ratio: fraction of singular values removed, in [0, 1)
            (LRPET's "prune goal").
        reduction_factor: factor on the removed singular values (0: hard
            truncation, LRPET's default).
        bn_rectify: rectify with the following BatchNormalization.
        ignored_layers: layers left whole (names, layers or layer
            classes); every other Conv with `groups=1` and Dense layer
            except the model's output layers is projected.
        every_n_steps: project every this many training batches instead of
            at epoch ends.
        **kwargs: deprecated spellings, accepted with a
            `DeprecationWarning`: `prune_goal` (now `pruning_ratio`) and
            `layers` (the names of the only layers to project).

    Example:
        >>> model.fit(x, y, epochs=30, callbacks=[
        ...     LowRankProjection(pruning_ratio=0.5)])
        >>> small, report = factorize_low_rank(model)

    Reference:
        Guo et al., "Compact Model Training by Low-Rank Projection with
        Energy Transfer", IEEE TNNLS 2024, https://arxiv.org/abs/2204.05566
    """

    def __init__(
        self,
        pruning_ratio=0.5,
        reduction_factor=0.0,
        bn_rectify=True,
        ignored_layers=None,
        every_n_steps=None,
        **kwargs,
    ):
        super().__init__()
        name = "prune_goal" if "prune_goal" in kwargs else "pruning_ratio"
        if name == "prune_goal":
            # The old default was 0.5: only a value given twice conflicts.
            pruning_ratio = pop_renamed(
                kwargs,
                "prune_goal",
                "pruning_ratio",
                None if pruning_ratio == 0.5 else pruning_ratio,
                where="LowRankProjection",
            )
        layers = pop_layers(kwargs, ignored_layers, "LowRankProjection")
        reject_unknown(kwargs, "LowRankProjection")
        check_fraction(pruning_ratio, name)
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
        self.pruning_ratio = float(pruning_ratio)
        self.reduction_factor = float(reduction_factor)
        self.bn_rectify = bool(bn_rectify)
        self.ignored_layers = ignored_layers
        self.layers = None if layers is None else list(layers)
        self.every_n_steps = every_n_steps
        self.history = []
        self._step = 0

    @property
    def prune_goal(self):
        """Deprecated name of `pruning_ratio`."""
        return self.pruning_ratio

    def targets(self, model):
        """The layers this callback projects, with their paired BN."""
        return select_layers(
            model,
            self.layers,
            self.bn_rectify,
            ignored_layers=self.ignored_layers,
        )

    def project(self, model):
        """Projects `model`'s selected layers now; returns a dict of info."""
        info = {}
        for layer, bn in self.targets(model):
            info[layer.name] = project_layer(
                layer,
                prune_goal=self.pruning_ratio,
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
        config = {
            "pruning_ratio": self.pruning_ratio,
            "reduction_factor": self.reduction_factor,
            "bn_rectify": self.bn_rectify,
            "ignored_layers": _names(self.ignored_layers),
            "every_n_steps": self.every_n_steps,
        }
        if self.layers is not None:
            config["layers"] = self.layers
        return config

    @classmethod
    def from_config(cls, config):
        # Configs saved with the old names load without a warning.
        config = dict(config)
        if "prune_goal" in config:
            config["pruning_ratio"] = config.pop("prune_goal")
        layers = config.pop("layers", None)
        callback = cls(**config)
        callback.layers = None if layers is None else list(layers)
        return callback


def _names(ignored_layers):
    """`ignored_layers` as JSON-friendly names (classes by class name)."""
    if ignored_layers is None:
        return None
    if isinstance(ignored_layers, (str, type, keras.layers.Layer)):
        ignored_layers = [ignored_layers]
    return [
        item.name
        if isinstance(item, keras.layers.Layer)
        else item.__name__
        if isinstance(item, type)
        else item
        for item in ignored_layers
    ]


def pop_layers(kwargs, ignored_layers, where):
    """Pops the deprecated include-list `layers=` from `kwargs`.

    `layers` named the only layers to handle; `ignored_layers` names the
    ones to leave out. Both at once is refused.
    """
    if "layers" not in kwargs:
        return None
    layers = pop_renamed(
        kwargs,
        "layers",
        "ignored_layers",
        ignored_layers,
        where=where,
        hint=" `layers` named the layers to handle; `ignored_layers` names "
        "the ones to leave out.",
        stacklevel=4,
    )
    return None if layers is None else list(layers)


def _is_ignored(layer, ignored):
    for item in ignored:
        if isinstance(item, type) and isinstance(layer, item):
            return True
        if item is layer or item == layer.name or item == type(layer).__name__:
            return True
    return False


def _check_ignored(functional, ignored):
    """Raises for an `ignored_layers` name that is not in the model."""
    names = {layer.name for layer in functional.layers}
    classes = {type(layer).__name__ for layer in functional.layers}
    for item in ignored:
        if isinstance(item, str) and item not in names | classes:
            raise ValueError(
                "`ignored_layers` must name layers (or layer classes) of the "
                f"model. Received: ignored_layers entry {item!r}"
            )
        if not isinstance(item, (str, type, keras.layers.Layer)):
            raise ValueError(
                "`ignored_layers` must hold layer names, layers or layer "
                f"classes. Received: ignored_layers entry {item!r}"
            )


def select_layers(model, names=None, bn_rectify=True, ignored_layers=None):
    """`[(layer, bn or None)]` for the layers LRPET handles in `model`.

    Args:
        model: the model.
        names: the only layers to handle (the deprecated `layers=`), or
            None for every supported layer except the output layers.
        bn_rectify: pair each layer with its following BatchNormalization.
        ignored_layers: names, layers or layer classes left out.

    Raises:
        ValueError: when `names` lists an unknown or unsupported layer, or
            `ignored_layers` an unknown one.
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
    if ignored_layers is not None:
        if isinstance(ignored_layers, (str, type, keras.layers.Layer)):
            ignored_layers = [ignored_layers]
        ignored_layers = list(ignored_layers)
        _check_ignored(functional, ignored_layers)
        layers = [x for x in layers if not _is_ignored(x, ignored_layers)]
    return [(layer, pairs.get(layer.name)) for layer in layers]
