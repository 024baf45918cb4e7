"""Attention heads pruned during training (`MaskedMultiHeadAttention`).

`prune_structured` wraps every `MultiHeadAttention` whose heads form a
prunable group, the controller masks whole heads out of the value
projection, and `strip_pruning` gives a model with fewer heads that
computes what the masked model computed.
"""

import warnings

import keras
import numpy as np
import pytest

import keras_neuronprune as knp
from keras_neuronprune.graph import register_layer_handler
from keras_neuronprune.graph.attention_handlers import MultiHeadAttentionHandler
from keras_neuronprune.layers.masked_multi_head_attention import (
    MaskedMultiHeadAttention,
)

L = keras.layers
RNG = np.random.default_rng(0)
HEADS = ["b0_mha/heads", "b1_mha/heads"]


def _block(x, name, dim=16, heads=4, ffn=32):
    attention = L.MultiHeadAttention(heads, dim // heads, name=f"{name}_mha")(
        x, x
    )
    x = L.Add(name=f"{name}_add1")([x, attention])
    x = L.LayerNormalization(name=f"{name}_ln1")(x)
    h = L.Dense(ffn, activation="gelu", name=f"{name}_ff1")(x)
    h = L.Dense(dim, name=f"{name}_ff2")(h)
    x = L.Add(name=f"{name}_add2")([x, h])
    return L.LayerNormalization(name=f"{name}_ln2")(x)


def _transformer(blocks=2, seq=6):
    inputs = keras.Input((seq, 5))
    x = L.Dense(16, name="embed")(inputs)
    for i in range(blocks):
        x = _block(x, f"b{i}")
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x))


def _data(model, n=8):
    shape = [n] + [int(d) for d in model.inputs[0].shape[1:]]
    x = RNG.standard_normal(shape).astype("float32")
    return x, RNG.standard_normal((n, 3)).astype("float32")


def _fit(pruned, x, y):
    pruned.compile(optimizer="adam", loss="mse")
    pruned.fit(
        x, y, epochs=1, batch_size=4, verbose=0,
        callbacks=[knp.callbacks.UpdatePruning()],
    )  # fmt: skip


def _np(tensor):
    return keras.ops.convert_to_numpy(tensor)


@pytest.fixture(scope="module")
def trained():
    model = _transformer()
    before = [w.copy() for w in model.get_weights()]
    x, y = _data(model)
    pruned = knp.prune_structured(model, criterion="l1", pruning_ratio=0.5)
    _fit(pruned, x, y)
    return model, before, pruned, x


# ----------------------------------------------------------------------
# The layer.
def _pair(x):
    plain = L.MultiHeadAttention(4, 3, name="mha")
    plain(x, x)
    masked = MaskedMultiHeadAttention.from_config(plain.get_config())
    masked(x, x)
    masked.set_weights(
        [w.numpy() for w in masked.weights[:2]] + plain.get_weights()
    )
    return plain, masked


def test_head_mask_equals_zeroed_output_projection_rows():
    x = RNG.standard_normal((2, 5, 8)).astype("float32")
    plain, masked = _pair(x)
    np.testing.assert_allclose(_np(masked(x, x)), _np(plain(x, x)), atol=1e-6)
    masked.set_head_mask([1, 0, 1, 0])
    # Reference: heads 1 and 3 silenced where their output is read.
    kernel = plain.output_dense.kernel.numpy()
    kernel[[1, 3]] = 0.0
    plain.output_dense.kernel.assign(kernel)
    expected = _np(plain(x, x))
    np.testing.assert_allclose(_np(masked(x, x)), expected, atol=1e-6)
    stripped = masked.to_parent()
    assert type(stripped) is L.MultiHeadAttention
    np.testing.assert_allclose(_np(stripped(x, x)), expected, atol=1e-6)
    assert not stripped.value_dense.kernel.numpy()[:, [1, 3]].any()


def test_output_mask_and_attention_scores():
    x = RNG.standard_normal((2, 5, 8)).astype("float32")
    _, masked = _pair(x)
    masked.set_output_mask([1, 1, 0, 1, 1, 1, 1, 0])
    out, scores = masked(x, x, return_attention_scores=True)
    assert not _np(out)[..., [2, 7]].any() and _np(out)[..., 0].any()
    assert tuple(scores.shape) == (2, 4, 5, 5)


def test_config_round_trip_and_registration():
    layer = MaskedMultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1)
    config = layer.get_config()
    assert config == L.MultiHeadAttention.from_config(config).get_config()
    clone = MaskedMultiHeadAttention.from_config(config)
    assert clone.get_config() == config
    name = keras.saving.get_registered_name(MaskedMultiHeadAttention)
    assert name == "keras_neuronprune>MaskedMultiHeadAttention"
    spec = knp.layers.masked_layer_spec(L.MultiHeadAttention)
    assert spec.masked_class is MaskedMultiHeadAttention


def test_bad_masks_and_kernel_mask_are_refused():
    x = RNG.standard_normal((2, 5, 8)).astype("float32")
    _, masked = _pair(x)
    with pytest.raises(ValueError, match=r"must have shape \(4,\)"):
        masked.set_head_mask([1, 0, 1])
    with pytest.raises(ValueError, match="only 0 and 1"):
        masked.set_head_mask([1, 0.5, 1, 1])
    with pytest.raises(ValueError, match="use_kernel_mask"):
        MaskedMultiHeadAttention(2, 4, use_kernel_mask=True)
    with pytest.raises(ValueError, match="no `input_mask`"):
        masked.set_input_mask(np.ones(8))


# ----------------------------------------------------------------------
# prune_structured -> fit -> strip_pruning.
def test_heads_are_groups_masked_and_stripped_exactly(trained):
    model, before, pruned, x = trained
    controller = pruned.controller
    names = [g.name for g in controller.groups]
    assert set(HEADS) <= set(names)
    assert isinstance(pruned.get_layer("b0_mha"), MaskedMultiHeadAttention)
    counts = controller.kept_counts(pruned)
    assert [counts[n] for n in HEADS] == [2, 2]
    assert counts["b0_ff1"] == 16
    head_mask = pruned.get_layer("b0_mha").head_mask.numpy()
    assert head_mask.sum() == 2
    stripped = knp.strip_pruning(pruned)
    for name in ("b0_mha", "b1_mha"):
        layer = stripped.get_layer(name)
        assert type(layer) is L.MultiHeadAttention and layer.num_heads == 2
        assert tuple(layer.query_dense.kernel.shape) == (16, 2, 4)
    np.testing.assert_allclose(
        _np(stripped(x)), _np(pruned(x)), atol=1e-5, rtol=1e-5
    )
    # The masked heads did change the function (the check is not vacuous).
    original = keras.models.clone_model(model)
    original.set_weights(before)
    assert np.abs(_np(original(x)) - _np(pruned(x))).max() > 1e-4
    # Attention and FFN dominate: half of each is close to half the FLOPs.
    flops = knp.count_cost(stripped).flops / knp.count_cost(model).flops
    assert flops < 0.6
    assert abs(controller.summary_scalars(pruned)["flops_kept"] - flops) < 0.02


def test_user_model_is_not_mutated(trained):
    model, before, _, _ = trained
    assert type(model.get_layer("b0_mha")) is L.MultiHeadAttention
    assert type(model.get_layer("b0_mha").value_dense) is L.EinsumDense
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_l1_head_importance_matches_numpy(trained):
    model, before, pruned, _ = trained
    original = keras.models.clone_model(model)
    original.set_weights(before)
    scores = pruned.controller.importance_histograms(pruned)
    for name in HEADS:
        layer = original.get_layer(name.split("/")[0])
        expected = sum(
            np.abs(dense.kernel.numpy()).sum(axis=(0, 2))
            for dense in (layer.query_dense, layer.key_dense, layer.value_dense)
        )
        np.testing.assert_allclose(scores[name], expected, rtol=1e-5)
        head_mask = pruned.get_layer(layer.name).head_mask.numpy()
        top = np.sort(np.argsort(expected)[-2:])
        np.testing.assert_array_equal(np.nonzero(head_mask)[0], top)


def test_pruned_model_save_load_round_trip(trained, tmp_path):
    _, _, pruned, x = trained
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("b1_mha"), MaskedMultiHeadAttention)
    np.testing.assert_array_equal(
        loaded.get_layer("b1_mha").head_mask.numpy(),
        pruned.get_layer("b1_mha").head_mask.numpy(),
    )
    np.testing.assert_allclose(_np(loaded(x)), _np(pruned(x)), atol=1e-6)
    stripped = knp.strip_pruning(loaded)
    assert stripped.get_layer("b1_mha").num_heads == 2
    np.testing.assert_allclose(_np(stripped(x)), _np(pruned(x)), atol=1e-5)


@pytest.mark.parametrize("criterion", ["l2", "random"])
def test_other_criteria_prune_heads(criterion):
    model = _transformer(blocks=1)
    x, _ = _data(model, n=2)
    pruned = knp.prune_structured(model, criterion=criterion, pruning_ratio=0.5)
    pruned.controller.prune(pruned)
    stripped = knp.strip_pruning(pruned)
    assert stripped.get_layer("b0_mha").num_heads == 2
    np.testing.assert_allclose(_np(stripped(x)), _np(pruned(x)), atol=1e-5)


def test_head_pruning_ratio_sets_the_heads_apart():
    model = _transformer(blocks=1)
    only_heads = knp.prune_structured(
        model, criterion="l1", head_pruning_ratio=0.75
    )
    only_heads.controller.prune(only_heads)
    counts = only_heads.controller.kept_counts(only_heads)
    assert counts == {"b0_mha/heads": 1, "b0_ff1": 32}
    no_heads = knp.prune_structured(
        model, criterion="l1", pruning_ratio=0.5, head_pruning_ratio=0.0,
        pruning_ratio_dict={"b0_ff1": 0.25},
    )  # fmt: skip
    no_heads.controller.prune(no_heads)
    counts = no_heads.controller.kept_counts(no_heads)
    assert counts == {"b0_mha/heads": 4, "b0_ff1": 24}


def test_bad_head_pruning_ratio():
    model = _transformer(blocks=1)
    with pytest.raises(ValueError, match="head_pruning_ratio=1.5"):
        knp.prune_structured(model, criterion="l1", head_pruning_ratio=1.5)
    with pytest.raises(ValueError, match="no prunable attention-head group"):
        knp.prune_structured(
            model, criterion="l1", head_pruning_ratio=0.5,
            ignored_layers=["b0_mha/heads"],
        )  # fmt: skip
    with pytest.raises(ValueError, match="head_pruning_ratio"):
        knp.prune_structured(model, criterion="l1")


def test_criteria_that_cannot_measure_heads_keep_them_with_a_warning():
    model = _transformer(blocks=1)
    with pytest.warns(UserWarning, match="measured by 'l1', 'l2' and"):
        pruned = knp.prune_structured(
            model, criterion="greg", pruning_ratio=0.5
        )
    pruned.controller.prune(pruned)
    counts = pruned.controller.kept_counts(pruned)
    assert counts["b0_mha/heads"] == 4 and counts["b0_ff1"] == 16


@pytest.fixture
def head_dim_mode():
    register_layer_handler(
        L.MultiHeadAttention, MultiHeadAttentionHandler(prune="head_dim")
    )
    yield
    register_layer_handler(L.MultiHeadAttention, MultiHeadAttentionHandler())


def test_head_dims_are_left_whole_with_a_warning(head_dim_mode):
    model = _transformer(blocks=1)
    with pytest.warns(UserWarning, match="head dimensions"):
        pruned = knp.prune_structured(model, criterion="l1", pruning_ratio=0.5)
    names = [g.name for g in pruned.controller.groups]
    assert names == ["b0_ff1"]
    assert type(pruned.get_layer("b0_mha")) is L.MultiHeadAttention


def test_keras_hub_transformer_encoder_heads():
    keras_hub = pytest.importorskip("keras_hub")
    inputs = keras.Input((6, 16))
    x = keras_hub.layers.TransformerEncoder(
        intermediate_dim=32, num_heads=4, name="enc"
    )(inputs)
    x = L.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, L.Dense(3)(x))
    groups = {g.name: g for g in knp.channel_groups(model)}
    if "enc/self_attention_layer/heads" not in groups:
        pytest.skip("keras-hub TransformerEncoder is not traced")
    x, _ = _data(model, n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruned = knp.prune_structured(model, criterion="l1", pruning_ratio=0.5)
    pruned.controller.prune(pruned)
    counts = pruned.controller.kept_counts(pruned)
    assert counts["enc/self_attention_layer/heads"] == 2
    stripped = knp.strip_pruning(pruned)
    attention = stripped.get_layer("enc").get_layer("self_attention_layer")
    assert attention.num_heads == 2
    np.testing.assert_allclose(_np(stripped(x)), _np(pruned(x)), atol=1e-5)
