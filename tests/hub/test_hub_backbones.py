"""Proof on keras-hub backbones built from their constructors (no weights).

For each convolutional backbone: every exact group thins exactly (thin ==
the zero-masked reference), and the reach is at least 0.5 (FLOPs fall by
at least half when every prunable group keeps half its channels). Two of
them also go through prune -> fit -> strip -> TFLite.
"""

import numpy as np
import pytest

pytest.importorskip("keras_hub")

import keras  # noqa: E402
from hub_models import HUB_MODELS  # noqa: E402
from hub_models import SIZE  # noqa: E402
from hub_models import build  # noqa: E402

import keras_neuronprune  # noqa: E402
from keras_neuronprune.rewrite import uniform_keep  # noqa: E402
from keras_neuronprune.testing import assert_thin_matches  # noqa: E402
from keras_neuronprune.testing import random_keep  # noqa: E402

IMAGE = (SIZE, SIZE, 3)


def _images(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + IMAGE).astype("float32")


def reach(model, groups):
    """Share of FLOPs removed when every prunable group keeps half."""
    thin, _ = keras_neuronprune.thin_model(
        model, uniform_keep(model, 0.5, groups=groups)
    )
    before = keras_neuronprune.count_cost(model, input_shape=IMAGE).flops
    after = keras_neuronprune.count_cost(thin, input_shape=IMAGE).flops
    return 1.0 - after / before


@pytest.mark.parametrize("name", sorted(HUB_MODELS))
def test_hub_backbone_thins_exactly_and_reaches_half(name):
    model = build(name)
    groups = keras_neuronprune.channel_groups(model)
    prunable = [g for g in groups if g.prunable]
    assert prunable, [g.reason for g in groups]
    # Every group that is not prunable is blocked by the model's own
    # inputs/outputs, never by a layer we could not see through.
    for g in groups:
        if not g.prunable:
            assert "model input" in g.reason or "model output" in g.reason, (
                g.name,
                g.reason,
            )
    assert all(g.exact for g in prunable)
    keep = random_keep(groups, rng=0)
    assert keep
    assert_thin_matches(
        model,
        keep,
        groups=groups,
        inputs=[_images()],
        check_cost=False,
        check_save=False,
        check_channels=False,
    )
    assert reach(model, groups) >= 0.5


def test_dynamic_backbone_needs_input_shape_named_for_prune_structured():
    model = build("resnet_v2")  # image_shape=(None, None, 3)
    with pytest.raises(ValueError, match=r"prune_structured.*input_shape"):
        keras_neuronprune.prune_structured(
            model, criterion="l1", pruning_ratio=0.5
        )


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


@pytest.mark.parametrize(
    "name,to_tflite",
    [("cspnet", False), ("mobilenet_v3", True), ("vgg", True)],
)
def test_hub_prune_fit_strip_tflite(name, to_tflite, tmp_path):
    model = build(name)
    dynamic = any(d is None for d in model.inputs[0].shape[1:])
    pruned = keras_neuronprune.prune_structured(
        model,
        criterion="l1",
        pruning_ratio=0.5,
        input_shape=IMAGE if dynamic else None,
    )
    x = _images(4)
    y = keras.tree.map_structure(
        lambda t: np.zeros((4,) + tuple(t.shape[1:]), "float32"),
        model(x[:1]),
    )
    pruned.compile(optimizer="sgd", loss="mse")
    pruned.fit(
        x,
        y,
        batch_size=2,
        epochs=1,
        verbose=0,
        callbacks=[keras_neuronprune.callbacks.UpdatePruning()],
    )
    final = keras_neuronprune.strip_pruning(pruned)
    assert final.count_params() < model.count_params()
    # Custom blocks were seen through: only stock Keras layers are left.
    for layer in _all_layers(final):
        assert type(layer).__module__.startswith("keras."), layer
    if not to_tflite:
        return
    path = str(tmp_path / f"{name}.tflite")
    keras_neuronprune.export.tflite(final, path, parity_data=x[:2], verbose=0)
