"""tflite_bench: latency of dense vs. pruned models on LiteRT (XNNPACK).

Run `python -m tflite_bench --help`. The built-in suite prunes
MobileNetV2, ResNet50, EfficientNetB0 (224x224) and a CIFAR ResNet-20 by
0/25/50/75% (uniform channel pruning with and without round_to=8), exports
each to .tflite (checking numerics against the Keras model), times them
interleaved at 1, 2 and 4 threads and writes CSV, JSON, markdown and a
latency-vs-FLOPs plot to the results folder.
"""

from tflite_bench.base_benchmark import LatencyStats
from tflite_bench.base_benchmark import time_interleaved
from tflite_bench.suite import BenchConfig
from tflite_bench.suite import run

__all__ = ["BenchConfig", "LatencyStats", "run", "time_interleaved"]
