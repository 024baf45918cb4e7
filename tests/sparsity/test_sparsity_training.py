"""End-to-end sparse training on scikit-learn's digits (8x8, 10 classes)."""

import keras
import numpy as np
import pytest

from keras_neuronprune.callbacks import PruningSummaries
from keras_neuronprune.callbacks import UpdatePruning
from keras_neuronprune.core import PrunedModel
from keras_neuronprune.sparsity import prune_weights
from keras_neuronprune.sparsity import reinitialize
from keras_neuronprune.sparsity import strip_weight_pruning
from keras_neuronprune.sparsity._optimizer_slots import slot_variables
from keras_neuronprune.sparsity.layers import WeightMaskedMixin
from keras_neuronprune.sparsity.schedules import PolynomialDecay

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
EPOCHS = 10
BATCH = 64
SPARSITY = 0.8
# Stated tolerance: at 80% sparsity every method ends within this many
# points of test accuracy of the dense MLP trained for the same epochs.
TOLERANCE = 0.06


def _compile(model, lr=3e-3):
    model.compile(keras.optimizers.Adam(lr), LOSS, metrics=["accuracy"])
    return model


def _accuracy(model, x, y):
    logits = np.asarray(model.predict(x, batch_size=256, verbose=0))
    return float((logits.argmax(axis=1) == y).mean())


@pytest.fixture(scope="module")
def dense_baseline(digits, mlp_factory):
    xtr, xte, ytr, yte = digits
    model = _compile(mlp_factory(seed=0))
    model.fit(xtr, ytr, batch_size=BATCH, epochs=EPOCHS, verbose=0)
    return model, _accuracy(model, xte, yte)


def _steps(x):
    return EPOCHS * int(np.ceil(len(x) / BATCH))


def _method_kwargs(method, xtr, ytr):
    steps = _steps(xtr)
    calibration = (xtr[:256], ytr[:256])
    return {
        "magnitude": {
            "schedule": PolynomialDecay(
                0.0, SPARSITY, 0, steps // 4, frequency=10
            )
        },
        "snip": {"sparsity": SPARSITY, "data": calibration, "loss": LOSS},
        "rigl": {
            "sparsity": SPARSITY,
            "data": calibration,
            "loss": LOSS,
            "end_step": int(0.75 * steps),
            "update_frequency": 20,
            "seed": 0,
        },
        "scl": {"sparsity": SPARSITY, "end_step": int(0.6 * steps)},
        "iss_p": {"sparsity": SPARSITY, "end_step": int(0.6 * steps)},
        "nnrelief": {
            "schedule": PolynomialDecay(
                0.0, SPARSITY, 0, steps // 4, frequency=20
            ),
            "data": calibration,
        },
    }[method]


@pytest.mark.parametrize(
    "method", ["magnitude", "snip", "rigl", "scl", "iss_p", "nnrelief"]
)
def test_method_reaches_target_sparsity_and_keeps_accuracy(
    method, digits, dense_baseline, mlp_factory
):
    xtr, xte, ytr, yte = digits
    dense, dense_accuracy = dense_baseline
    # Pruning-after-training methods start from the trained dense model,
    # the sparse-training ones from a fresh initialisation.
    source = dense if method in ("magnitude", "nnrelief") else mlp_factory(1)
    pruned = prune_weights(
        source, method=method, **_method_kwargs(method, xtr, ytr)
    )
    _compile(pruned)
    pruned.fit(
        xtr,
        ytr,
        batch_size=BATCH,
        epochs=EPOCHS,
        verbose=0,
        callbacks=[UpdatePruning()],
    )
    stripped = strip_weight_pruning(pruned)
    kernels = [
        stripped.get_layer(name).kernel.numpy()
        for name, _ in pruned.controller.layers_of(pruned)
    ]
    zeros = sum(int((k == 0).sum()) for k in kernels)
    total = sum(k.size for k in kernels)
    assert zeros / total == pytest.approx(SPARSITY, abs=5e-3)
    accuracy = _accuracy(stripped, xte, yte)
    assert accuracy >= dense_accuracy - TOLERANCE, (method, accuracy)
    np.testing.assert_allclose(
        stripped.predict(xte[:32], verbose=0),
        pruned.predict(xte[:32], verbose=0),
        atol=1e-4,
    )


@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adam"])
def test_optimizer_slots_of_pruned_weights_stay_zero(
    optimizer, digits, mlp_factory
):
    xtr, _, ytr, _ = digits
    pruned = prune_weights(
        mlp_factory(), schedule=PolynomialDecay(0.0, 0.7, 0, 20, frequency=5)
    )
    opt = (
        keras.optimizers.SGD(0.05, momentum=0.9)
        if optimizer == "sgd_momentum"
        else keras.optimizers.Adam(1e-2, weight_decay=None)
    )
    pruned.compile(opt, LOSS)
    pruned.fit(
        xtr[:640],
        ytr[:640],
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[UpdatePruning()],
    )
    for _, layer in pruned.controller.layers_of(pruned):
        mask = layer.kernel_mask.numpy()
        assert (mask == 0).mean() == pytest.approx(0.7, abs=1e-3)
        assert np.all(layer.kernel_variable.numpy()[mask == 0] == 0)
        slots = slot_variables(pruned.optimizer, layer.kernel_variable)
        assert len(slots) == (1 if optimizer == "sgd_momentum" else 2)
        for slot in slots:
            value = slot.numpy()
            assert np.all(value[mask == 0] == 0)
            assert np.any(value[mask == 1] != 0)


def test_masks_survive_keras_save_and_load(tmp_path, digits, mlp_factory):
    xtr, xte, ytr, _ = digits
    pruned = prune_weights(
        mlp_factory(),
        method="rigl",
        sparsity=0.8,
        data=(xtr[:128], ytr[:128]),
        loss=LOSS,
        end_step=40,
        update_frequency=10,
    )
    _compile(pruned)
    pruned.fit(
        xtr[:640],
        ytr[:640],
        batch_size=32,
        epochs=1,
        verbose=0,
        callbacks=[UpdatePruning()],
    )
    path = str(tmp_path / "sparse.keras")
    pruned.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, PrunedModel)
    assert loaded.controller.get_config() == pruned.controller.get_config()
    assert int(loaded.pruning_step.numpy()) == 20
    for (name, a), (_, b) in zip(
        pruned.controller.layers_of(pruned), loaded.controller.layers_of(loaded)
    ):
        np.testing.assert_array_equal(
            a.kernel_mask.numpy(), b.kernel_mask.numpy()
        )
        np.testing.assert_array_equal(
            a.kernel_variable.numpy(), b.kernel_variable.numpy()
        )
    np.testing.assert_allclose(
        loaded.predict(xte, verbose=0),
        pruned.predict(xte, verbose=0),
        atol=1e-6,
    )
    # Training resumes after re-attaching the data (not part of the config).
    with pytest.raises(ValueError, match="set_data"):
        loaded.fit(xtr[:64], ytr[:64], verbose=0, callbacks=[UpdatePruning()])
    loaded.controller.set_data((xtr[:128], ytr[:128]))
    loaded.fit(
        xtr[:640],
        ytr[:640],
        batch_size=32,
        epochs=1,
        verbose=0,
        callbacks=[UpdatePruning()],
    )
    assert loaded.controller.summary_scalars(loaded)["sparsity"] == (
        pytest.approx(0.8, abs=2e-3)
    )


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise RuntimeError("interrupted")


def test_masks_survive_backup_and_restore(tmp_path, digits, mlp_factory):
    xtr, _, ytr, _ = digits
    x, y = xtr[:320], ytr[:320]  # 10 steps per epoch at batch 32

    def fresh():
        schedule = PolynomialDecay(0.0, 0.8, 0, 30, frequency=5)
        return _compile(prune_weights(mlp_factory(), schedule=schedule))

    backup = str(tmp_path / "backup")
    model = fresh()
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=4,
            verbose=0,
            callbacks=[
                UpdatePruning(),
                keras.callbacks.BackupAndRestore(backup),
                _Interrupt(2),
            ],
        )
    masks = {
        n: layer.kernel_mask.numpy().copy()
        for n, layer in model.controller.layers_of(model)
    }
    assert int(model.pruning_step.numpy()) == 20
    resumed = fresh()
    seen = {}

    class Check(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if not seen:
                seen["step"] = int(resumed.pruning_step.numpy())
                seen["masks"] = {
                    n: layer.kernel_mask.numpy().copy()
                    for n, layer in resumed.controller.layers_of(resumed)
                }

    resumed.fit(
        x,
        y,
        batch_size=32,
        epochs=4,
        verbose=0,
        callbacks=[
            keras.callbacks.BackupAndRestore(backup),
            Check(),
            UpdatePruning(),
        ],
    )
    assert seen["step"] == 20
    for name, mask in masks.items():
        np.testing.assert_array_equal(seen["masks"][name], mask)
    assert int(resumed.pruning_step.numpy()) == 40
    assert resumed.controller.summary_scalars(resumed)["sparsity"] == (
        pytest.approx(0.8, abs=1e-3)
    )


def test_pruning_summaries_write_scalars_and_histograms(
    tmp_path, digits, mlp_factory
):
    xtr, _, ytr, _ = digits
    pruned = _compile(prune_weights(mlp_factory(), sparsity=0.5))
    history = pruned.fit(
        xtr[:128],
        ytr[:128],
        batch_size=32,
        epochs=1,
        verbose=0,
        callbacks=[UpdatePruning(), PruningSummaries(str(tmp_path))],
    )
    assert history.history["sparsity"][-1] == pytest.approx(0.5, abs=1e-3)
    histograms = pruned.controller.importance_histograms(pruned)
    assert set(histograms) == {"fc1", "fc2", "logits"}
    assert histograms["fc1"].size == 2048
    assert list((tmp_path / "pruning").iterdir())


def test_reinitialize_gives_fresh_weights_and_keeps_connectivity(
    digits, mlp_factory, cnn_factory
):
    xtr, _, ytr, _ = digits
    model = cnn_factory()
    before = [w.numpy().copy() for w in model.weights]
    fresh = reinitialize(model, seed=3)
    again = reinitialize(model, seed=3)
    assert [type(la) for la in fresh.layers] == [
        type(la) for la in model.layers
    ]
    for a, b in zip(before, model.weights):
        np.testing.assert_array_equal(a, b.numpy())

    def kernels(m):
        return [la.kernel.numpy() for la in m.layers if hasattr(la, "kernel")]

    for old, new, same in zip(kernels(model), kernels(fresh), kernels(again)):
        assert old.shape == new.shape
        assert not np.allclose(old, new)
        np.testing.assert_array_equal(new, same)
    seq = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert reinitialize(seq).layers[-1].kernel.shape == (3, 2)

    pruned = prune_weights(mlp_factory(), sparsity=0.75)
    pruned.controller.on_train_begin(pruned)
    pruned.controller.on_train_batch_begin(pruned, 0)
    scratch = reinitialize(pruned, seed=0)
    assert isinstance(scratch, PrunedModel)
    assert scratch.controller.get_config()["method"] == "fixed"
    for (name, a), (_, b) in zip(
        pruned.controller.layers_of(pruned),
        scratch.controller.layers_of(scratch),
    ):
        np.testing.assert_array_equal(
            a.kernel_mask.numpy(), b.kernel_mask.numpy()
        )
        assert np.all(
            b.kernel_variable.numpy()[b.kernel_mask.numpy() == 0] == 0
        )
        assert not np.allclose(
            a.kernel_variable.numpy(), b.kernel_variable.numpy()
        )
    _compile(scratch)
    scratch.fit(
        xtr[:256],
        ytr[:256],
        batch_size=32,
        epochs=1,
        verbose=0,
        callbacks=[UpdatePruning()],
    )
    assert scratch.controller.summary_scalars(scratch)["sparsity"] == (
        pytest.approx(0.75, abs=1e-3)
    )
    assert all(
        isinstance(la, WeightMaskedMixin)
        for _, la in scratch.controller.layers_of(scratch)
    )
