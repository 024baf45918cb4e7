"""`thin_model`: physically remove channels; `zero_removed_inputs`: the
masked reference a thin model must match."""

from keras_neuronprune.graph.dependency_graph import DependencyGraph
from keras_neuronprune.rewrite.keep_sets import resolve_keep
from keras_neuronprune.rewrite.rebuilder import Rebuilder
from keras_neuronprune.rewrite.thinning_report import ThinningReport


def thin_model(model, keep, allow_inexact=False):
    """Returns a new, physically thinner model and a report.

    Channels not listed in `keep` are removed from every layer of their
    group: producers lose filters/units, BatchNormalization loses
    parameters and statistics, consumers lose input weights (Dense rows
    behind a Flatten included), concatenations lose the matching slice.
    The input model is never modified; layer names are preserved; the
    result uses the same (standard) layer classes, so it saves to `.keras`
    and loads without custom objects.

    Args:
        model: a functional or Sequential Keras model.
        keep: dict group name -> sorted channel indices to keep (see
            `keras_neuronprune.channel_groups`). Groups not named keep all
            their channels.
        allow_inexact: allow pruning groups normalised across channels
            (LayerNormalization...), whose surviving values then change.

    Returns:
        `(new_model, report)`; `report` is a `ThinningReport`: totals and
        channels per thinned group (`print(report)`), every layer's
        channels, parameters and FLOPs before and after (`report.table()`).

    Raises:
        ValueError: subclassed model, unknown or unprunable group, empty,
            out-of-range, duplicate or unsorted indices, or a keep set that
            leaves a grouped convolution's groups unequal.

    Example:

    ```python
    groups = keras_neuronprune.channel_groups(model)
    keep = {g.name: list(range(g.size // 2)) for g in groups if g.prunable}
    thin, report = keras_neuronprune.thin_model(model, keep)
    print(report)
    ```
    """
    graph = DependencyGraph(model, allow_inexact=allow_inexact)
    resolved = resolve_keep(graph, keep)
    kept = graph.kept_labels(resolved)
    new_model = Rebuilder(graph, kept, "thin").build(model)
    changes = [
        (graph.groups[i].name, graph.groups[i].size, int(len(indices)))
        for i, indices in sorted(resolved.items())
    ]
    return new_model, ThinningReport.compare(model, new_model, changes)


def zero_removed_inputs(model, keep, allow_inexact=False):
    """A copy of `model` whose consumers ignore the removed channels.

    Same architecture and shapes as `model`, with the input weights of
    every channel-mixing layer (Conv, Dense...) zeroed for the channels that
    `keep` removes. For exact groups, `thin_model(model, keep)` computes
    exactly what this model computes.
    """
    graph = DependencyGraph(model, allow_inexact=allow_inexact)
    resolved = resolve_keep(graph, keep)
    kept = graph.kept_labels(resolved)
    return Rebuilder(graph, kept, "zero").build(model)
