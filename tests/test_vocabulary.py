"""One vocabulary over the public signatures (issue #10, item 4).

Channels: `pruning_ratio*`; weights: `sparsity`; FLOPs:
`flops_pruning_ratio`; layer exclusion: `ignored_layers`. Old spellings
stay accepted through `**kwargs` for one release, with a
`DeprecationWarning`, and give the same result as the new ones.
"""

import importlib
import inspect
import json
import warnings
import zipfile

import keras
import numpy as np
import pytest

import keras_neuronprune as knp
from keras_neuronprune import schedules
from keras_neuronprune.lowrank import LowRankProjection
from keras_neuronprune.lowrank import factorize_low_rank

CHANNEL_MODULES = (
    "keras_neuronprune",
    "keras_neuronprune.analysis",
    "keras_neuronprune.callbacks",
    "keras_neuronprune.core",
    "keras_neuronprune.cost",
    "keras_neuronprune.criteria",
    "keras_neuronprune.export",
    "keras_neuronprune.graph",
    "keras_neuronprune.layers",
    "keras_neuronprune.lowrank",
    "keras_neuronprune.pruning",
    "keras_neuronprune.regularizers",
    "keras_neuronprune.rewrite",
    "keras_neuronprune.schedules",
    "keras_neuronprune.testing",
)
WEIGHT_MODULES = (
    "keras_neuronprune.sparsity",
    "keras_neuronprune.sparsity.layers",
    "keras_neuronprune.sparsity.methods",
    "keras_neuronprune.sparsity.schedules",
)
FORBIDDEN = {
    "ratio",
    "target_sparsity",
    "initial_ratio",
    "final_ratio",
    "prune_goal",
    "target_flops",
    "layers",
}
# Weight-sparsity schedules keep tfmot's argument names; result objects
# hold per-layer rows in `layers` (a result, not a layer selection), and
# so does the `MethodContext` a controller hands its sparsity method: the
# `(path, masked layer)` pairs being pruned, which custom methods read as
# `context.layers`; nothing is chosen or excluded through it.
ALLOWED = {
    "ConstantSparsity": {"target_sparsity"},
    "ModelCost": {"layers"},
    "LowRankReport": {"layers"},
    "ThinningReport": {"layers"},
    "MethodContext": {"layers"},
}
# `*_ratio` names that are not a fraction of channels removed: GReg's
# `default_ratio` is the ratio of the other groups; ISS-P's `shrink_ratio`
# is the factor the smallest weights are multiplied by (the authors'
# `--ist_ratio`), not a share of weights removed, and it is already saved
# under that name in `method_config`.
NOT_PRUNING_RATIOS = ("default_ratio", "shrink_ratio")
FRACTION_NAMES = ("pruning_ratio", "max_pruning_ratio", "flops_pruning_ratio")


def _public_callables(module_names):
    seen = set()
    for module_name in module_names:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if inspect.ismodule(obj) or not callable(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            target = obj.__init__ if inspect.isclass(obj) else obj
            try:
                signature = inspect.signature(target)
            except (TypeError, ValueError):
                continue
            yield f"{module_name}.{name}", obj.__name__, signature


def _bad_params(name, signature):
    allowed = ALLOWED.get(name, set())
    bad = []
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        # A channel fraction spelled `*_ratio` must say `pruning_ratio`.
        misnamed_ratio = (
            param.name.endswith("ratio")
            and "pruning_ratio" not in param.name
            and param.name not in NOT_PRUNING_RATIOS
        )
        if misnamed_ratio or (
            param.name in FORBIDDEN and param.name not in allowed
        ):
            bad.append(param.name)
    return bad


def _violations(module_names):
    return [
        (path, name, param)
        for path, name, signature in _public_callables(module_names)
        for param in _bad_params(name, signature)
    ]


def test_public_names_exist():
    names = [p for p, _, _ in _public_callables(CHANNEL_MODULES)]
    assert "keras_neuronprune.prune_structured" in names
    assert "keras_neuronprune.schedules.OneShot" in names
    assert len(names) > 50


def test_channel_side_uses_one_vocabulary():
    assert _violations(CHANNEL_MODULES) == []


def test_weight_side_uses_one_vocabulary():
    assert _violations(WEIGHT_MODULES) == []


def test_the_rule_still_catches_old_spellings():
    # The exemptions must not hide the spellings the rule exists for.
    def old(model, ratio=0.5, layers=None, target_flops=None, keep_ratio=1):
        return model

    def method(shrink_ratio=0.9, default_ratio=0.5, pruning_ratio=0.5):
        return shrink_ratio

    assert _bad_params("old", inspect.signature(old)) == [
        "ratio",
        "layers",
        "target_flops",
        "keep_ratio",
    ]
    assert _bad_params("old", inspect.signature(method)) == []
    assert _bad_params("ModelCost", inspect.signature(old)) == [
        "ratio",
        "target_flops",
        "keep_ratio",
    ]


def test_channel_fraction_and_layer_names():
    sig = inspect.signature(knp.prune_structured).parameters
    for name in (*FRACTION_NAMES, "pruning_ratio_dict", "ignored_layers"):
        assert name in sig
    assert "data" in sig
    for cls, names in (
        (schedules.OneShot, ("pruning_ratio",)),
        (
            schedules.PolynomialDecay,
            ("initial_pruning_ratio", "final_pruning_ratio"),
        ),
        (schedules.Iterative, ("final_pruning_ratio",)),
        (LowRankProjection, ("pruning_ratio", "ignored_layers")),
    ):
        params = inspect.signature(cls.__init__).parameters
        assert all(n in params for n in names), (cls, names)
    params = inspect.signature(factorize_low_rank).parameters
    assert "pruning_ratio" in params and "ignored_layers" in params


@pytest.mark.parametrize(
    "module, name",
    [
        ("keras_neuronprune.layers", "GATE_SUFFIX"),
        ("keras_neuronprune.layers", "MASK_WEIGHT_NAMES"),
        ("keras_neuronprune.layers", "MASKED_LAYERS"),
        ("keras_neuronprune.cost", "ACTIVATION_FLOPS"),
    ],
)
def test_internal_names_not_in_public_all(module, name):
    assert name not in importlib.import_module(module).__all__


# Deprecated spellings: warn, same result. ---------------------------------


def _warns_deprecated(fn, *args, **kwargs):
    with pytest.warns(DeprecationWarning, match="deprecated"):
        return fn(*args, **kwargs)


def _no_warning(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        return fn(*args, **kwargs)


def _steps(schedule, n=40):
    return [schedule(i) for i in range(n)]


def test_one_shot_ratio_alias():
    old = _warns_deprecated(schedules.OneShot, step=3, ratio=0.3)
    new = _no_warning(schedules.OneShot, step=3, pruning_ratio=0.3)
    assert _steps(old) == _steps(new)
    assert new.get_config()["pruning_ratio"] == 0.3
    with pytest.raises(ValueError, match="not both"):
        schedules.OneShot(step=3, ratio=0.3, pruning_ratio=0.3)
    with pytest.raises(TypeError, match="nope"):
        schedules.OneShot(step=3, nope=1)


def test_polynomial_decay_ratio_aliases():
    old = _warns_deprecated(
        schedules.PolynomialDecay,
        initial_ratio=0.1,
        final_ratio=0.6,
        end_step=30,
        frequency=5,
    )
    new = _no_warning(
        schedules.PolynomialDecay,
        initial_pruning_ratio=0.1,
        final_pruning_ratio=0.6,
        end_step=30,
        frequency=5,
    )
    assert _steps(old) == _steps(new)
    config = new.get_config()
    assert config["initial_pruning_ratio"] == 0.1
    assert config["final_pruning_ratio"] == 0.6
    with pytest.raises(ValueError, match="not both"):
        schedules.PolynomialDecay(final_ratio=0.5, final_pruning_ratio=0.5)


def test_iterative_ratio_alias():
    old = _warns_deprecated(
        schedules.Iterative, channels_per_step=4, final_ratio=0.5
    ).bind(0.9, num_channels=32)
    new = schedules.Iterative(channels_per_step=4, final_pruning_ratio=0.5)
    new = new.bind(0.9, num_channels=32)
    assert _steps(old, 200) == _steps(new, 200)


@pytest.mark.parametrize(
    "cls, old_config",
    [
        (schedules.OneShot, {"step": 2, "ratio": 0.4, "fraction": None}),
        (
            schedules.PolynomialDecay,
            {"initial_ratio": 0.0, "final_ratio": 0.5, "end_step": 9},
        ),
        (
            schedules.Iterative,
            {"channels_per_step": 2, "final_ratio": 0.5, "num_channels": 8},
        ),
    ],
)
def test_configs_saved_with_old_names_load_silently(cls, old_config):
    restored = _no_warning(cls.from_config, old_config)
    assert restored.final_ratio == 0.4 or restored.final_ratio == 0.5
    again = cls.from_config(json.loads(json.dumps(restored.get_config())))
    assert _steps(again) == _steps(restored)


def _cnn():
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for i, filters in enumerate((8, 12)):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"c{i}")(x)
        x = keras.layers.BatchNormalization(name=f"b{i}")(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def _kept(pruned):
    pruned.controller.prune(pruned)
    return {k: len(v) for k, v in pruned.controller.keep_sets(pruned).items()}


def test_prune_structured_target_flops_alias():
    model = _cnn()
    old = _warns_deprecated(
        knp.prune_structured, model, criterion="l1", target_flops=0.5
    )
    new = _no_warning(
        knp.prune_structured, model, criterion="l1", flops_pruning_ratio=0.5
    )
    assert _kept(old) == _kept(new)
    with pytest.raises(ValueError, match="not both"):
        knp.prune_structured(
            model, criterion="l1", target_flops=0.5, flops_pruning_ratio=0.5
        )
    with pytest.raises(ValueError, match="flops_pruning_ratio=1.0"):
        knp.prune_structured(model, criterion="l1", flops_pruning_ratio=1.0)
    with pytest.raises(ValueError, match="pruning_ratio=0.5, flops_pruning"):
        knp.prune_structured(
            model, criterion="l1", pruning_ratio=0.5, flops_pruning_ratio=0.5
        )
    with pytest.raises(TypeError, match="unexpected keyword"):
        knp.prune_structured(model, criterion="l1", pruning_ratio=0.5, x=1)


def _renamed_keys(obj, new, old, convert):
    """A copy of a JSON config with key `new` written as `old`."""
    if isinstance(obj, list):
        return [_renamed_keys(v, new, old, convert) for v in obj]
    if not isinstance(obj, dict):
        return obj
    return {
        (old if k == new else k): (
            convert(v) if k == new and v is not None
            else _renamed_keys(v, new, old, convert)
        )
        for k, v in obj.items()
    }  # fmt: skip


def test_controller_flops_pruning_ratio_alias(tmp_path):
    from keras_neuronprune.pruning import StructuredPruningController

    pruned = _no_warning(
        knp.prune_structured, _cnn(), criterion="l1", flops_pruning_ratio=0.4
    )
    config = pruned.controller.get_config()
    assert config["flops_pruning_ratio"] == pytest.approx(0.4)
    assert "target_flops" not in config
    old_config = _renamed_keys(
        config, "flops_pruning_ratio", "target_flops", lambda r: 1 - r
    )
    assert old_config["target_flops"] == pytest.approx(0.6)
    # The schedule bound to a FLOPs target (final ratio 1.0) does not
    # deserialize yet (OneShot refuses 1.0): pass the object itself.
    old_config["schedule"] = pruned.controller.schedule
    # Saved configs load silently; the constructor warns and converts.
    restored = _no_warning(StructuredPruningController.from_config, old_config)
    built = _warns_deprecated(StructuredPruningController, **old_config)
    for controller in (restored, built):
        assert controller.flops_pruning_ratio == pytest.approx(0.4)
    with pytest.raises(ValueError, match="not both"):
        StructuredPruningController(**old_config, flops_pruning_ratio=0.4)

    # A PrunedModel saved before the rename (`"target_flops": null`) loads
    # silently and prunes the same. (With a FLOPs target the bound
    # schedule's final ratio 1.0 does not load yet, renamed or not.)
    pruned = knp.prune_structured(_cnn(), criterion="l1", pruning_ratio=0.5)
    path = tmp_path / "new.keras"
    pruned.save(path)
    old_path = tmp_path / "old.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old_path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                data = json.dumps(
                    _renamed_keys(
                        json.loads(data),
                        "flops_pruning_ratio",
                        "target_flops",
                        lambda r: 1 - r,
                    )
                )
                assert '"target_flops": null' in data
            dst.writestr(item, data)
    loaded = _no_warning(keras.models.load_model, old_path)
    assert loaded.controller.flops_pruning_ratio is None
    assert "flops_pruning_ratio" in loaded.controller.get_config()
    assert _kept(loaded) == _kept(pruned) == {"c0": 4, "c1": 6}


def test_both_controllers_take_data_through_set_data():
    from keras_neuronprune.sparsity import prune_weights

    x = np.zeros((4, 8, 8, 3), "float32")
    batches = [(x, np.zeros(4, "int64"))]
    structured = knp.prune_structured(
        _cnn(),
        criterion="taylor",
        pruning_ratio=0.5,
        data=batches,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    structured.controller.set_data(None)  # as after loading the model
    with pytest.raises(ValueError, match=r"controller.set_data\(batches\)"):
        structured.controller.prune(structured)
    structured.controller.set_data(batches)
    assert len(structured.controller.data) == len(batches)
    assert len(structured.controller.prune(structured)) == 2
    weights = prune_weights(_cnn(), sparsity=0.5)
    assert "data" in inspect.signature(prune_weights).parameters
    weights.controller.set_data(batches)


def _set_kernels(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            shape = layer.kernel.shape
            layer.kernel.assign(rng.normal(size=shape).astype("float32"))
    return model


def test_low_rank_projection_aliases():
    model = _set_kernels(_cnn())
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    old = _warns_deprecated(LowRankProjection, prune_goal=0.5, layers=["c1"])
    new = _no_warning(LowRankProjection, pruning_ratio=0.5, ignored_layers="c0")
    assert old.pruning_ratio == new.pruning_ratio == old.prune_goal
    old.project(model)
    new.project(twin)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    restored = _no_warning(
        LowRankProjection.from_config, {"prune_goal": 0.3, "layers": ["c1"]}
    )
    assert restored.pruning_ratio == 0.3 and restored.layers == ["c1"]
    with pytest.raises(ValueError, match="ignored_layers"):
        LowRankProjection(ignored_layers=["nope"]).targets(model)


def test_factorize_low_rank_aliases():
    model = _set_kernels(_cnn())
    _, old = _warns_deprecated(
        factorize_low_rank, model, prune_goal=0.5, layers=["c1"]
    )
    _, new = _no_warning(
        factorize_low_rank, model, pruning_ratio=0.5, ignored_layers=["c0"]
    )
    assert [(f.name, f.rank) for f in old.factorized] == [
        (f.name, f.rank) for f in new.factorized
    ]
    with pytest.raises(ValueError, match="not both"):
        factorize_low_rank(model, layers=["c1"], ignored_layers=["c0"])
