"""The public surface of keras_neuronprune, and what importing it does."""

import subprocess
import sys

import keras_neuronprune

DOCUMENTED = {
    "BoundedBatchNorm", "BoundedBatchNormalization", "PrunedModel",
    "PruningController", "__version__", "analysis", "callbacks",
    "channel_groups", "count_cost", "criteria", "export", "layers", "lowrank",
    "prune_structured",
    "prune_weights", "regularizers", "reinitialize", "register_layer_handler",
    "schedules", "sparsity", "strip_pruning", "thin_model", "uniform_keep",
}  # fmt: skip


def test_public_names_are_the_documented_ones():
    assert set(keras_neuronprune.__all__) == DOCUMENTED
    for name in DOCUMENTED:
        assert hasattr(keras_neuronprune, name), name


def test_import_keeps_keras_3_and_never_loads_tfmot_or_tf_keras():
    code = (
        "import sys, keras, keras_neuronprune\n"
        "assert keras.__version__.startswith('3'), keras.__version__\n"
        "bad = [m for m in ('tensorflow_model_optimization', 'tf_keras',"
        " 'onnx', 'tf2onnx', 'ai_edge_litert') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
