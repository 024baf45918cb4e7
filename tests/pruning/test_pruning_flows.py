"""End-to-end flows with the library's criteria, schedules and callbacks."""

import glob
import json
import os

import keras
import numpy as np
import pytest
from pruning_testlib import KernelL1
from pruning_testlib import small_cnn

from keras_neuronprune.callbacks import PruningSummaries
from keras_neuronprune.callbacks import UpdatePruning
from keras_neuronprune.layers import BoundedBatchNormalization
from keras_neuronprune.pruning import prune_structured
from keras_neuronprune.pruning import strip_pruning
from keras_neuronprune.schedules import OneShot
from keras_neuronprune.schedules import PolynomialDecay

X = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
Y = np.arange(16) % 4
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _fit(pruned, epochs=1, callbacks=()):
    pruned.compile(optimizer=keras.optimizers.SGD(0.05), loss=LOSS)
    return pruned.fit(
        X,
        Y,
        batch_size=8,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[UpdatePruning(), *callbacks],
    )


def test_rni_flow_bounded_batchnorm_to_plain(tmp_path):
    model = small_cnn()
    with pytest.warns(UserWarning, match="cannot measure.*fc1"):
        pruned = prune_structured(
            model,
            criterion="rni",
            pruning_ratio=0.5,
            schedule=OneShot(step=2),
        )
    bn = pruned.get_layer("bn1")
    assert isinstance(bn, BoundedBatchNormalization)
    # Statistics are carried over from the user's BatchNormalization.
    np.testing.assert_allclose(
        bn.moving_variance.numpy(),
        model.get_layer("bn1").moving_variance.numpy(),
    )
    assert len(pruned.losses) == 2  # one RNI penalty per bounded BN
    history = _fit(
        pruned, epochs=2, callbacks=[PruningSummaries(str(tmp_path))]
    )
    assert history.history["pruning_ratio"][-1] > 0
    kept = pruned.controller.kept_counts(pruned)
    # Global ranking over the BN-measured groups: 10 of their 20 channels,
    # at least 3 per group (RNI's minimum); fc1 cannot be measured.
    assert kept["fc1"] == 16
    assert kept["conv1"] + kept["conv2"] == 10
    assert min(kept["conv1"], kept["conv2"]) >= 3
    final = strip_pruning(pruned)
    # Standard layers only, and no library regulariser left in the config.
    assert "keras_neuronprune" not in json.dumps(final.get_config())
    plain_bn = final.get_layer("bn1")
    assert type(plain_bn) is keras.layers.BatchNormalization
    keep = pruned.controller.keep_sets(pruned)["conv1"]
    np.testing.assert_allclose(
        plain_bn.gamma.numpy(), bn.importances()[keep], rtol=1e-6
    )
    np.testing.assert_allclose(
        pruned.predict(X, verbose=0), final.predict(X, verbose=0), atol=1e-5
    )
    histograms = pruned.controller.importance_histograms(pruned)
    assert set(histograms) == {"conv1", "conv2"}
    assert os.path.isdir(tmp_path / "pruning")
    assert glob.glob(str(tmp_path / "pruning" / "events.*"))


def test_tfmot_style_function_and_polynomial_schedules():
    def schedule(step):
        return step in (1, 3), 0.25 if step < 3 else 0.5

    pruned = prune_structured(
        small_cnn(),
        criterion=KernelL1(),
        pruning_ratio=0.5,
        schedule=schedule,
    )
    history = _fit(pruned, epochs=2)
    np.testing.assert_allclose(history.history["pruning_ratio"], [9 / 36, 0.5])
    poly = PolynomialDecay(begin_step=0, end_step=3, frequency=1, power=1)
    pruned = prune_structured(
        small_cnn(),
        criterion="bn_scale",
        pruning_ratio=0.5,
        schedule=poly,
        global_pruning=False,
        ignored_layers=["fc1"],
    )
    assert len(pruned.losses) == 2  # Network Slimming's L1 on both BNs
    assert pruned.controller.schedule.final_ratio == 0.5
    history = _fit(pruned, epochs=2)
    assert history.history["pruning_ratio"][0] < 0.5
    assert history.history["pruning_ratio"][1] == pytest.approx(0.5)
    final = strip_pruning(pruned)
    assert "keras_neuronprune" not in json.dumps(final.get_config())


def test_gradient_criterion_gets_gates_and_needs_data():
    model = small_cnn()
    with pytest.raises(ValueError, match="data=None"):
        prune_structured(model, criterion="taylor", pruning_ratio=0.5)
    pruned = prune_structured(
        model,
        criterion="taylor",
        pruning_ratio=0.5,
        data=[(X[:8], Y[:8])],
        loss=LOSS,
    )
    names = [layer.name for layer in pruned.layers]
    assert "bn1_gate" in names and "bn2_gate" in names
    assert not pruned.controller.global_pruning  # per group by default
    pruned.controller.prune(pruned)
    assert sum(pruned.controller.kept_counts(pruned).values()) == 18
    scores = pruned.controller.importance_histograms(pruned)
    assert set(scores) == {"conv1", "conv2", "fc1"}
    assert all(np.all(v >= 0) for v in scores.values())
    final = strip_pruning(pruned)
    assert not any("gate" in layer.name for layer in final.layers)
    np.testing.assert_allclose(
        pruned.predict(X, verbose=0), final.predict(X, verbose=0), atol=1e-5
    )


def test_unknown_criterion_names_the_value():
    with pytest.raises(ValueError, match="criterion='nope'"):
        prune_structured(small_cnn(), criterion="nope", pruning_ratio=0.5)


def test_nested_model_and_concatenate():
    keras.utils.set_random_seed(7)
    inner_in = keras.Input((6, 6, 4))
    h = keras.layers.Conv2D(6, 3, padding="same", name="inner_conv")(inner_in)
    h = keras.layers.ReLU(name="inner_relu")(h)
    inner = keras.Model(inner_in, h, name="block")
    inputs = keras.Input((6, 6, 3))
    a = keras.layers.Conv2D(4, 1, name="a")(inputs)
    b = keras.layers.Conv2D(5, 1, name="b")(inputs)
    c = keras.layers.Concatenate(name="cat")([a, b])
    x = keras.layers.Conv2D(4, 1, name="squeeze")(c)
    x = inner(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    pruned = prune_structured(model, criterion="l1", pruning_ratio=0.5)
    pruned.controller.prune(pruned)
    kept = pruned.controller.kept_counts(pruned)
    assert kept["a"] == 2 and kept["b"] in (2, 3)
    assert kept["block/inner_conv"] == 3
    final = strip_pruning(pruned)
    assert final.get_layer("squeeze").filters == 2
    assert final.get_layer("block").get_layer("inner_conv").filters == 3
    x = np.random.default_rng(5).normal(size=(2, 6, 6, 3))
    np.testing.assert_allclose(
        pruned.predict(x, verbose=0), final.predict(x, verbose=0), atol=1e-5
    )
