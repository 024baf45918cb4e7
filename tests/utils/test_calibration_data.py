import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_neuronprune.utils.calibration import calibration_batches
from keras_neuronprune.utils.calibration import num_samples


def _model():
    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Dense(2)(inp))


def test_accepted_forms():
    model = _model()
    x = np.arange(40, dtype="float32").reshape(10, 4)
    y = np.arange(10)
    split = calibration_batches((x, y), model, "T", batch_size=4)
    assert [len(b[1]) for b in split] == [4, 4, 2]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    from_ds = calibration_batches(ds, model, "T")
    assert num_samples(from_ds) == 10
    np.testing.assert_array_equal(from_ds[0][0], x[:3])
    trimmed = calibration_batches(ds, model, "T", max_samples=5)
    assert num_samples(trimmed) == 5 and len(trimmed[-1][1]) == 2
    bare = calibration_batches([x[:5], x[5:]], model, "T")
    assert bare[0][1] is None
    with_weights = calibration_batches([(x, y, np.ones(10))], model, "T")
    assert num_samples(with_weights) == 10
    ints = calibration_batches([(x.astype("int32"), y)], model, "T")
    assert ints[0][0].dtype == np.int32

    class Seq(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[i * 5 : (i + 1) * 5], y[i * 5 : (i + 1) * 5]

    assert num_samples(calibration_batches(Seq(), model, "T")) == 10


def test_rejected_forms():
    model = _model()
    x = np.zeros((8, 4), "float32")
    with pytest.raises(ValueError, match="`data` is required: T"):
        calibration_batches(None, model, "T")
    with pytest.raises(ValueError, match="empty"):
        calibration_batches([], model, "T")
    with pytest.raises(ValueError, match=r"expected shape \(None, 4\)"):
        calibration_batches([(np.zeros((8, 5)), np.zeros(8))], model, "T")
    with pytest.raises(ValueError, match="dtype=complex"):
        calibration_batches([(x.astype(complex), np.zeros(8))], model, "T")
    with pytest.raises(ValueError, match="needs targets"):
        calibration_batches([x], model, "T", needs_targets=True)
    with pytest.raises(ValueError, match="rows"):
        calibration_batches([(x, np.zeros(3))], model, "T")
    with pytest.raises(ValueError, match="at least 20 calibration samples"):
        calibration_batches([(x, np.zeros(8))], model, "T", min_samples=20)
    with pytest.raises(ValueError, match="batches"):
        calibration_batches([{"a": 1}], model, "T")
