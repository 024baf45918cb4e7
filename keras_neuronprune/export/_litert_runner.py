"""Run .tflite models in the LiteRT interpreter (`ai_edge_litert`)."""

import re

import numpy as np

from keras_neuronprune.export._common import import_litert

SIGNATURE_KEY = "serving_default"


def make_interpreter(model, num_threads=None):
    """A LiteRT `Interpreter` (XNNPACK is applied by its default resolver).

    Args:
        model: path to a .tflite file or its bytes.
        num_threads: CPU threads for XNNPACK / the builtin kernels.
    """
    Interpreter = import_litert(
        "interpreter", "Running .tflite models (the LiteRT interpreter)"
    ).Interpreter
    if isinstance(model, (bytes, bytearray)):
        return Interpreter(model_content=bytes(model), num_threads=num_threads)
    return Interpreter(model_path=str(model), num_threads=num_threads)


def tensor_details(details):
    """JSON-friendly name/shape/dtype/quantization of tensor details."""
    out = []
    for name, d in details:
        scale, zero_point = d.get("quantization", (0.0, 0))
        out.append(
            {
                "name": name,
                "shape": [int(x) for x in d["shape_signature"]]
                if "shape_signature" in d
                else [int(x) for x in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name,
                "quantization": [float(scale), int(zero_point)],
            }
        )
    return out


class LiteRTRunner:
    """Calls a converted Keras model through its serving signature.

    Inputs are matched by signature name (the names given at export), so the
    order of the interpreter's input tensors does not matter. Int8 inputs
    and outputs are quantized / dequantized with their tensor parameters.
    Models exported with a fixed batch of 1 are run sample by sample.
    """

    def __init__(self, model, input_names, num_threads=None):
        self.interpreter = make_interpreter(model, num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE_KEY not in signatures:
            raise ValueError(
                f"The .tflite model has no '{SIGNATURE_KEY}' signature "
                f"(found {sorted(signatures)})."
            )
        self.runner = self.interpreter.get_signature_runner(SIGNATURE_KEY)
        self.input_names = list(input_names)
        sig_inputs = self.runner.get_input_details()
        missing = [n for n in self.input_names if n not in sig_inputs]
        if missing:
            raise ValueError(
                f"Signature inputs {sorted(sig_inputs)} do not match the "
                f"exported input names {self.input_names}."
            )
        self.input_details = [(n, sig_inputs[n]) for n in self.input_names]
        outs = self.runner.get_output_details()
        self.output_names = _output_order(list(outs))
        self.output_details = [(n, outs[n]) for n in self.output_names]
        first = self.input_details[0][1]
        sig = first.get("shape_signature", first["shape"])
        self.fixed_batch = int(sig[0]) if len(sig) and sig[0] > 0 else None

    def __call__(self, inputs):
        """Runs all samples; `inputs` is a list of arrays (one per input)."""
        n = inputs[0].shape[0]
        step = self.fixed_batch or n
        chunks = []
        for start in range(0, n, step):
            feed = {}
            for (name, d), arr in zip(self.input_details, inputs):
                feed[name] = _quantize(arr[start : start + step], d)
            result = self.runner(**feed)
            chunks.append(
                [
                    _dequantize(result[name], d)
                    for name, d in self.output_details
                ]
            )
        return [
            np.concatenate([c[i] for c in chunks], axis=0)
            for i in range(len(self.output_details))
        ]


def _output_order(names):
    # Keras names flat outputs output_0, output_1, ... in model order; dict
    # outputs keep their keys, which keras.tree.flatten visits sorted.
    if all(re.fullmatch(r"output_\d+", n) for n in names):
        return sorted(names, key=lambda n: int(n.split("_")[1]))
    return sorted(names)


def _quantize(arr, details):
    dtype = np.dtype(details["dtype"])
    scale, zero_point = details.get("quantization", (0.0, 0))
    if dtype in (np.int8, np.uint8) and scale:
        info = np.iinfo(dtype)
        q = np.round(arr / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)
    return arr.astype(dtype)


def _dequantize(arr, details):
    scale, zero_point = details.get("quantization", (0.0, 0))
    if np.dtype(details["dtype"]) in (np.int8, np.uint8) and scale:
        return (arr.astype(np.float32) - zero_point) * scale
    return np.asarray(arr)
