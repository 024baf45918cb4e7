"""Real-data quality benchmark: every structured criterion vs uniform shrinking.

Run `python -m benchmarks.quality --help`. A dense baseline is trained once
per (model, data, budget, seed) and cached; every method then starts from
that checkpoint with the same optimiser, batches, epochs and seeds, at each
target (FLOP reductions such as `2x`, `4x`, or channel ratios such as
`ch90`). Outputs: results.json, results.csv, results.md (mean and spread
over seeds), pareto.png and, for RNI, the importance histograms.
"""
