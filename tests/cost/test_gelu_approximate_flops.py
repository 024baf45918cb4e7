"""FLOP rule of the tanh-approximate GELU (layer activation and raw op)."""

import functools
import sys
from pathlib import Path

import keras
import pytest

from keras_neuronprune import count_cost
from keras_neuronprune.graph import flops_formulas as ff

sys.path.insert(0, str(Path(__file__).parent))
from tf_profiler_helper import tf_profiler_flops  # noqa: E402

UNITS = 6
IN = 5


def _approx(x):
    return keras.activations.gelu(x, approximate=True)


# A keras-hub style registered function (keras_hub's `gelu_approximate`).
_approx.__name__ = "gelu_approximate"


def _dense_model(activation):
    inputs = keras.Input((IN,))
    outputs = keras.layers.Dense(UNITS, activation=activation)(inputs)
    return keras.Model(inputs, outputs)


def _op_model(approximate):
    inputs = keras.Input((IN,))
    x = keras.layers.Dense(UNITS)(inputs)
    outputs = keras.ops.gelu(x, approximate=approximate)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "activation",
    [
        functools.partial(keras.activations.gelu, approximate=True),
        keras.ops.gelu,
        _approx,
    ],
    ids=["partial", "ops_gelu", "named"],
)
def test_dense_with_approximate_gelu_counts_seven_per_element(activation):
    dense = 2 * IN * UNITS + UNITS
    assert count_cost(_dense_model(activation)).flops == dense + 7 * UNITS


def test_exact_gelu_keeps_four_per_element():
    model = _dense_model("gelu")
    assert count_cost(model).flops == 2 * IN * UNITS + UNITS + 4 * UNITS


@pytest.mark.parametrize("approximate, per_element", [(True, 7), (False, 4)])
def test_gelu_op_reads_its_approximate_flag(approximate, per_element):
    model = _op_model(approximate)
    expected = 2 * IN * UNITS + UNITS + per_element * UNITS
    assert count_cost(model).flops == expected
    # The convention is the count TF's own profiler gives.
    assert tf_profiler_flops(model)[0] == expected


def test_activation_name_of_partials():
    gelu = keras.activations.gelu
    exact = functools.partial(gelu, approximate=False)
    assert ff.activation_name(exact) == "gelu"
    assert ff.activation_name(functools.partial(gelu)) == "gelu"
    relu = functools.partial(keras.activations.relu, max_value=6.0)
    # A partial that changes another activation's maths has no known count.
    assert ff.activation_name(relu) is None
    assert ff.ACTIVATION_FLOPS["gelu_approximate"] == 7
