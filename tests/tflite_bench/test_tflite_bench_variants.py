import keras
import numpy as np
import pytest

from tflite_bench import variants as bench_variants
from tflite_bench.cli import build_parser
from tflite_bench.cli import config_from_args


def _convnet(softmax=False):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="c2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    act = "softmax" if softmax else None
    outputs = keras.layers.Dense(4, activation=act, name="head")(x)
    return keras.Model(inputs, outputs)


def test_labels():
    assert bench_variants.variant_label(0.5, 8) == "r50_rt8"
    assert bench_variants.variant_label(0.25, 1, "taylor") == "taylor_r25_rt1"


def test_unknown_criterion_is_a_clear_error():
    with pytest.raises(ValueError, match="Received: 'nope'"):
        bench_variants.check_criteria(["l1", "nope"])
    with pytest.raises(SystemExit):
        # argparse reports it and exits with status 2.
        parser = build_parser()
        args = parser.parse_args(["--criteria", "nope"])
        try:
            config_from_args(args)
        except ValueError as e:
            parser.error(str(e))
    args = build_parser().parse_args(["--criteria"])
    assert config_from_args(args).criteria == ()
    args = build_parser().parse_args(["--round-to", "0"])
    with pytest.raises(ValueError, match="--round-to must be >= 1"):
        config_from_args(args)


def test_loss_matches_the_output():
    assert bench_variants.classification_loss(_convnet()).from_logits
    loss = bench_variants.classification_loss(_convnet(softmax=True))
    assert not loss.from_logits


def test_calibration_batches_from_data_and_from_predictions():
    model = _convnet()
    x = np.random.default_rng(0).standard_normal((40, 8, 8, 3))
    y = np.arange(40) % 4
    batches = bench_variants.calibration_batches(model, (x, y))
    assert [len(b[0]) for b in batches] == [16, 16, 8]
    np.testing.assert_array_equal(batches[1][1], y[16:32])
    batches = bench_variants.calibration_batches(model, (x, y), 20)
    assert [len(b[0]) for b in batches] == [16, 4]
    assert batches[0][0].dtype == np.float32

    batches = bench_variants.calibration_batches(model, num_samples=20)
    assert [len(b[0]) for b in batches] == [16, 4]
    xs = np.concatenate([b[0] for b in batches])
    ys = np.concatenate([b[1] for b in batches])
    # Labels are the dense model's own predictions.
    np.testing.assert_array_equal(ys, np.argmax(np.asarray(model(xs)), axis=-1))


def test_l1_criterion_keeps_the_largest_filters_and_matches_uniform_widths():
    model = _convnet()
    kernel = np.asarray(model.get_layer("c1").kernel)
    before = [np.asarray(w).copy() for w in model.get_weights()]
    out = list(bench_variants.variants(model, (0.5,), (1,), criteria=("l1",)))
    assert [(o[0], o[3]) for o in out] == [
        ("dense", None),
        ("r50_rt1", "uniform"),
        ("l1_r50_rt1", "l1"),
    ]
    assert out[0][4] is model
    uniform, l1 = out[1][4], out[2][4]
    for name in ("c1", "c2"):
        assert (
            l1.get_layer(name).kernel.shape
            == uniform.get_layer(name).kernel.shape
        )
    assert l1.get_layer("c1").kernel.shape[-1] == 4
    norms = np.abs(kernel).sum(axis=(0, 1, 2))
    top = np.sort(np.argsort(-norms)[:4])
    np.testing.assert_allclose(
        np.asarray(l1.get_layer("c1").kernel), kernel[..., top]
    )
    # The user's model is untouched.
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_data_driven_criterion_prunes_with_calibration_data():
    model = _convnet()
    x = np.random.default_rng(0).standard_normal((32, 8, 8, 3))
    y = np.arange(32) % 4
    thin = bench_variants.criterion_model(
        model,
        "taylor",
        0.5,
        2,
        bench_variants.calibration_batches(model, (x, y)),
    )
    widths = [thin.get_layer(n).kernel.shape[-1] for n in ("c1", "c2")]
    # Taylor ranks globally: about 7 of the 14 channels remain, each layer
    # keeping a multiple of 2 (rounding up adds at most 1 per layer).
    assert all(w % 2 == 0 and 0 < w for w in widths)
    assert 7 <= sum(widths) <= 9
    assert thin.count_params() < model.count_params()
    np.testing.assert_equal(thin.output_shape, model.output_shape)


def _one_alias_per_criterion():
    from keras_neuronprune.criteria import all_criteria

    aliases = {}
    for alias, cls in sorted(all_criteria().items()):
        aliases.setdefault(cls, alias)
    return sorted(aliases.values())


@pytest.mark.parametrize("name", _one_alias_per_criterion())
def test_every_criterion_prunes_one_shot(name):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(x))
    thin = bench_variants.criterion_model(
        model, name, 0.5, 2, bench_variants.calibration_batches(model)
    )
    widths = [thin.get_layer(n).kernel.shape[-1] for n in ("c1", "c2")]
    # Half of the 16 channels go (per layer or ranked globally; RNI keeps
    # at least 3 per layer), in multiples of 2.
    assert all(w % 2 == 0 and 2 <= w < 8 or w == 8 for w in widths)
    assert sum(widths) <= 10
    assert thin.output_shape == model.output_shape
