import json

import keras
import numpy as np
import pytest
from pruning_testlib import FixedScores
from pruning_testlib import KernelL1
from pruning_testlib import small_cnn
from pruning_testlib import weights_snapshot

from keras_neuronprune.callbacks import UpdatePruning
from keras_neuronprune.core import PrunedModel
from keras_neuronprune.cost import count_cost
from keras_neuronprune.layers import MaskedConv2D
from keras_neuronprune.pruning import prune_structured
from keras_neuronprune.pruning import strip_pruning
from keras_neuronprune.schedules import Iterative

X = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
Y = np.arange(16) % 4


def _fit(pruned, epochs=1, callbacks=(), **kwargs):
    pruned.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return pruned.fit(
        X,
        Y,
        batch_size=8,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[UpdatePruning(), *callbacks],
        **kwargs,
    )


def _kept(pruned):
    return pruned.controller.kept_counts(pruned)


def _is_plain(model):
    config = json.dumps(model.get_config())
    return "keras_neuronprune" not in config and all(
        type(layer).__module__.startswith("keras.") for layer in model.layers
    )


def test_flow_prunes_strips_and_keeps_user_model():
    model = small_cnn()
    before = weights_snapshot(model)
    pruned = prune_structured(model, criterion=KernelL1(), pruning_ratio=0.5)
    assert isinstance(pruned, PrunedModel)
    # Only consumers need masks (their input mask removes a channel); the
    # first conv and the BatchNorms keep their plain, faster layers.
    assert isinstance(pruned.get_layer("conv2"), MaskedConv2D)
    assert type(pruned.get_layer("conv1")) is keras.layers.Conv2D
    assert type(pruned.get_layer("bn1")) is keras.layers.BatchNormalization
    _fit(pruned)
    assert int(pruned.pruning_step.numpy()) == 2
    assert _kept(pruned) == {"conv1": 4, "conv2": 6, "fc1": 8}
    final = strip_pruning(pruned)
    # The user's model is untouched: same layers, same weights.
    assert type(model.get_layer("conv1")) is keras.layers.Conv2D
    for a, b in zip(before, weights_snapshot(model)):
        np.testing.assert_array_equal(a, b)
    # Physically thinner, plain Keras, same function.
    assert final.get_layer("conv1").filters == 4
    assert final.get_layer("conv2").filters == 6
    assert final.get_layer("fc1").units == 8
    assert _is_plain(final)
    np.testing.assert_allclose(
        pruned.predict(X, verbose=0), final.predict(X, verbose=0), atol=1e-5
    )
    base, thin = count_cost(model), count_cost(final)
    assert thin.params < 0.4 * base.params
    scalars = pruned.controller.summary_scalars(pruned)
    assert scalars["pruning_ratio"] == pytest.approx(18 / 36)
    assert scalars["flops_kept"] == pytest.approx(
        thin.flops / base.flops, abs=0.01
    )


def test_lowest_scores_are_removed_per_group():
    table = {"conv1": [5, 1, 7, 2, 8, 3, 9, 4]}
    pruned = prune_structured(
        small_cnn(), criterion=FixedScores(table), pruning_ratio=0.5
    )
    keep = pruned.controller.prune(pruned)
    np.testing.assert_array_equal(keep["conv1"], [0, 2, 4, 6])
    mask = [1, 0, 1, 0, 1, 0, 1, 0]
    for consumer in ("conv2", "conv3"):
        np.testing.assert_array_equal(
            pruned.get_layer(consumer).input_mask.numpy(), mask
        )
    # conv3 is swapped for its input mask, so its output (group conv2)
    # is masked too; conv2's output mask belongs to group conv2.
    out = pruned.get_layer("conv3").output_mask.numpy()
    np.testing.assert_array_equal(
        out, pruned.get_layer("conv2").output_mask.numpy()
    )


def test_global_pruning_ranks_across_groups():
    table = {
        "conv1": [0.0] * 8,  # the least important channels of the model
        "conv2": list(range(10, 22)),
        "fc1": list(range(30, 46)),
    }
    pruned = prune_structured(
        small_cnn(),
        criterion=FixedScores(table),
        pruning_ratio=0.25,
        global_pruning=True,
        min_channels=2,
    )
    pruned.controller.prune(pruned)
    # 9 of 36 channels go: conv1 down to min_channels (6), then conv2 (3).
    assert _kept(pruned) == {"conv1": 2, "conv2": 9, "fc1": 16}


def test_round_to_min_channels_and_max_ratio():
    pruned = prune_structured(
        small_cnn(), criterion=KernelL1(), pruning_ratio=0.6, round_to=4
    )
    pruned.controller.prune(pruned)
    assert _kept(pruned) == {"conv1": 4, "conv2": 8, "fc1": 8}
    pruned = prune_structured(
        small_cnn(),
        criterion=KernelL1(),
        pruning_ratio=0.9,
        min_channels=3,
        max_pruning_ratio=0.75,
    )
    pruned.controller.prune(pruned)
    assert _kept(pruned) == {"conv1": 3, "conv2": 3, "fc1": 4}


def test_ratio_dict_and_ignored_layers():
    pruned = prune_structured(
        small_cnn(),
        criterion=KernelL1(),
        pruning_ratio_dict={"conv3": 0.5, "fc1": 0.25},
        ignored_layers=["conv1"],
    )
    assert [g.name for g in pruned.controller.groups] == ["conv2", "fc1"]
    pruned.controller.prune(pruned)
    # conv3 is a producer of group conv2 (residual add).
    assert _kept(pruned) == {"conv2": 6, "fc1": 12}
    pruned = prune_structured(
        small_cnn(),
        criterion=KernelL1(),
        pruning_ratio=0.5,
        pruning_ratio_dict={"fc1": 0.0},
    )
    pruned.controller.prune(pruned)
    assert _kept(pruned) == {"conv1": 4, "conv2": 6, "fc1": 16}


def test_flops_target_within_one_percent():
    inputs = keras.Input((16, 16, 3))
    x = inputs
    for i, filters in enumerate((16, 24, 32)):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"c{i}")(x)
        x = keras.layers.BatchNormalization(name=f"b{i}")(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    for target, global_pruning in ((0.5, False), (0.3, True)):
        pruned = prune_structured(
            model,
            criterion=KernelL1(),
            flops_pruning_ratio=1.0 - target,
            global_pruning=global_pruning,
        )
        pruned.controller.prune(pruned)
        final = strip_pruning(pruned)
        ratio = count_cost(final).flops / count_cost(model).flops
        assert abs(ratio - target) <= 0.01, (target, ratio)


def test_iterative_schedule_prunes_gradually():
    pruned = prune_structured(
        small_cnn(),
        criterion=KernelL1(),
        pruning_ratio=0.5,
        schedule=Iterative(channels_per_step=6, frequency=2),
        global_pruning=True,
    )
    history = _fit(pruned, epochs=3)
    # 18 channels: 6 at steps 0, 2 and 4.
    np.testing.assert_allclose(
        history.history["pruning_ratio"], [6 / 36, 12 / 36, 18 / 36]
    )
    assert sum(_kept(pruned).values()) == 18


def test_sequential_model_and_flatten_consumer():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(6, 3, activation="relu", name="c"),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(5, activation="sigmoid", name="fc"),
            keras.layers.Dense(2, name="out"),
        ]
    )
    pruned = prune_structured(model, criterion=KernelL1(), pruning_ratio=0.5)
    pruned.controller.prune(pruned)
    final = strip_pruning(pruned)
    assert final.get_layer("c").filters == 3
    assert final.get_layer("fc").units == 3
    x = np.random.default_rng(1).normal(size=(4, 6, 6, 2))
    np.testing.assert_allclose(
        pruned.predict(x, verbose=0), final.predict(x, verbose=0), atol=1e-5
    )


def test_grouped_convolution_keeps_equal_chunks():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(8, 1, name="expand")(inputs)
    x = keras.layers.Conv2D(4, 3, groups=2, name="grouped")(x)
    model = keras.Model(
        inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x))
    )
    table = {"expand": [9, 8, 7, 6, 1, 2, 3, 4]}
    pruned = prune_structured(
        model, criterion=FixedScores(table), pruning_ratio=0.5
    )
    keep = pruned.controller.prune(pruned)
    np.testing.assert_array_equal(keep["expand"], [0, 1, 6, 7])
    final = strip_pruning(pruned)
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 3))
    np.testing.assert_allclose(
        pruned.predict(x, verbose=0), final.predict(x, verbose=0), atol=1e-5
    )


def test_unmaskable_consumer_gets_an_input_gate():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((5, 5, 2))
    x = keras.layers.Conv2D(6, 3, activation="tanh", name="c")(inputs)
    x = keras.layers.Conv2DTranspose(3, 3, name="up")(x)
    model = keras.Model(inputs, x)
    pruned = prune_structured(model, criterion=KernelL1(), pruning_ratio=0.5)
    assert "up_input_mask0" in [layer.name for layer in pruned.layers]
    pruned.controller.prune(pruned)
    final = strip_pruning(pruned)
    assert final.get_layer("c").filters == 3
    x = np.random.default_rng(3).normal(size=(2, 5, 5, 2))
    np.testing.assert_allclose(
        pruned.predict(x, verbose=0), final.predict(x, verbose=0), atol=1e-5
    )


def test_groups_through_raw_keras_ops_prune_and_strip_exactly():
    # Python operators and keras.ops on symbolic tensors become graph
    # operations that are not layers (MobileNetV3's hard-swish is
    # `x * relu6(x + 3) / 6`); they are members of channel groups.
    keras.utils.set_random_seed(7)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = x * keras.ops.relu6(x + 3.0) / 6.0
    x = keras.layers.Conv2D(4, 1, name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    assert any(
        not isinstance(op, keras.layers.Layer) for op in model.operations
    )
    pruned = prune_structured(model, criterion=KernelL1(), pruning_ratio=0.5)
    pruned.controller.prune(pruned)
    final = strip_pruning(pruned)
    assert final.get_layer("c1").filters == 4
    assert final.get_layer("c2").kernel.shape == (1, 1, 4, 2)
    x = np.random.default_rng(3).normal(size=(4, 6, 6, 3)).astype("float32")
    reference = pruned.predict(x, verbose=0)
    assert np.abs(reference).max() > 1e-3
    np.testing.assert_allclose(
        reference, final.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_strip_returns_a_plain_model_when_nothing_was_pruned(tmp_path):
    # RNI measures BatchNormalization scales; without BN every group keeps
    # all its channels, and the stripped model must still be plain Keras.
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    with pytest.warns(UserWarning, match="cannot measure"):
        pruned = prune_structured(model, criterion="rni", pruning_ratio=0.5)
        pruned.controller.prune(pruned)
    final = strip_pruning(pruned)
    assert not isinstance(final, PrunedModel)
    assert final.count_params() == model.count_params()
    assert "pruning_step" not in [w.path for w in final.weights]
    final.save(tmp_path / "plain.keras")
    loaded = keras.saving.load_model(tmp_path / "plain.keras")
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3))
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pruning_ratio": 1.0}, "pruning_ratio=1.0"),
        ({"pruning_ratio": -0.1}, "pruning_ratio=-0.1"),
        ({}, "pruning_ratio=None"),
        ({"pruning_ratio": 0.5, "target_flops": 0.5}, "target_flops=0.5"),
        ({"target_flops": 0.0}, "target_flops=0.0"),
        ({"target_flops": 0.001}, "target_flops=0.001"),
        ({"pruning_ratio": 0.5, "min_channels": 0}, "min_channels=0"),
        ({"pruning_ratio": 0.5, "round_to": 0}, "round_to=0"),
        ({"pruning_ratio": 0.5, "max_pruning_ratio": 0}, "max_pruning_ratio=0"),
        ({"pruning_ratio_dict": {"fc1": 1.2}}, r"pruning_ratio_dict\['fc1'\]"),
        ({"pruning_ratio_dict": {"nope": 0.5}}, "'nope' is neither"),
        ({"pruning_ratio_dict": {"logits": 0.5}}, "model output"),
        ({"pruning_ratio": 0.5, "ignored_layers": ["nope"]}, "'nope'"),
        ({"pruning_ratio": 0.5, "global_pruning": "yes"}, "global_pruning"),
        ({"pruning_ratio": 0.5, "criterion": 3}, "criterion=3"),
    ],
)
def test_bad_arguments_name_argument_and_value(kwargs, match):
    kwargs.setdefault("criterion", KernelL1())
    model = small_cnn()
    with pytest.raises(ValueError, match=match):
        prune_structured(model, **kwargs)


def test_rejects_already_pruned_models_and_missing_data():
    model = small_cnn()
    pruned = prune_structured(model, criterion=KernelL1(), pruning_ratio=0.5)
    with pytest.raises(ValueError, match="already a PrunedModel"):
        prune_structured(pruned, criterion=KernelL1(), pruning_ratio=0.5)
    inner = keras.Model(pruned.inputs, pruned.outputs)
    with pytest.raises(ValueError, match="already contains pruning layers"):
        prune_structured(inner, criterion=KernelL1(), pruning_ratio=0.5)

    class NeedsData(KernelL1):
        requires_data = True

    with pytest.raises(ValueError, match="data=None"):
        prune_structured(model, criterion=NeedsData(), pruning_ratio=0.5)
    with pytest.raises(ValueError, match="PrunedModel"):
        strip_pruning(model)


def test_save_mid_pruning_resumes_to_same_result(tmp_path):
    def make():
        return prune_structured(
            small_cnn(),
            criterion=KernelL1(),
            pruning_ratio=0.5,
            schedule=Iterative(channels_per_step=4, frequency=2),
            importance_momentum=0.5,
        )

    reference = make()
    _fit(reference, epochs=4)

    resumed = make()
    _fit(resumed, epochs=2)
    path = str(tmp_path / "mid.keras")
    resumed.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, PrunedModel)
    assert int(loaded.pruning_step.numpy()) == 4
    assert _kept(loaded) == _kept(resumed)
    np.testing.assert_allclose(
        loaded.controller.importance_histograms(loaded)["conv2"],
        resumed.controller.importance_histograms(resumed)["conv2"],
    )
    loaded.fit(
        X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0,
        callbacks=[UpdatePruning()],
    )  # fmt: skip
    assert _kept(loaded) == _kept(reference)
    for group in reference.controller.groups:
        np.testing.assert_array_equal(
            loaded.controller.kept(loaded, group),
            reference.controller.kept(reference, group),
        )
    np.testing.assert_allclose(
        loaded.predict(X, verbose=0), reference.predict(X, verbose=0),
        atol=1e-4,
    )  # fmt: skip


def test_backup_and_restore_resumes_pruning(tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    def make():
        return prune_structured(
            small_cnn(),
            criterion=KernelL1(),
            pruning_ratio=0.5,
            schedule=Iterative(channels_per_step=4, frequency=2),
        )

    reference = make()
    _fit(reference, epochs=4)

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    model = make()
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(model, epochs=4, callbacks=[backup, Interrupt()])
    restarted = make()  # a fresh process would rebuild the same model
    _fit(restarted, epochs=4, callbacks=[backup])
    assert int(restarted.pruning_step.numpy()) == 8
    assert _kept(restarted) == _kept(reference)


def test_stripped_model_saves_plain_and_converts_to_tflite(tmp_path):
    import tensorflow as tf

    pruned = prune_structured(
        small_cnn(), criterion=KernelL1(), pruning_ratio=0.5
    )
    pruned.controller.prune(pruned)
    final = strip_pruning(pruned)
    path = str(tmp_path / "final.keras")
    final.save(path)
    with keras.saving.custom_object_scope({}):
        loaded = keras.models.load_model(path)
    assert _is_plain(loaded)
    np.testing.assert_allclose(
        loaded.predict(X, verbose=0), final.predict(X, verbose=0), atol=1e-6
    )
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(final).convert()
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the deprecated TF copy of the same interpreter
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], X[:1])
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, final.predict(X[:1], verbose=0), atol=1e-4)
