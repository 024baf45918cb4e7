"""Command line: `keras-neuronprune` (also `python -m keras_neuronprune`).

Sub-commands:
- `inspect MODEL`: channel groups (prunable, inexact, blocked and why) and
  cost of a `.keras` file or a keras.applications architecture by name.
- `thin MODEL --ratio R [--round-to N] --output PATH`: write a model with
  `R` of every prunable group's channels removed, and print the report.
- `demo`, `export`: see their own `--help`.
"""

import argparse
import os
import sys


def load_model(spec, input_size=None):
    """Loads a `.keras` file, or builds a keras.applications model by name.

    Args:
        spec: path to a `.keras` file, or an architecture name such as
            `MobileNetV2` (built with `weights=None`, offline).
        input_size: image side for architectures (default: the smallest
            size the architecture accepts, 32 for most).
    """
    import keras

    if spec.endswith(".keras") or os.path.exists(spec):
        if not os.path.exists(spec):
            raise ValueError(f"Model file not found: {spec!r}")
        return keras.models.load_model(spec)
    builder = getattr(keras.applications, spec, None)
    if builder is None or not callable(builder):
        raise ValueError(
            f"Unknown model {spec!r}: give a .keras file or a "
            "keras.applications architecture name such as 'MobileNetV2'."
        )
    size = input_size or smallest_input_size(spec)
    return builder(weights=None, input_shape=(size, size, 3))


def smallest_input_size(name):
    """Smallest square input side a keras.applications model accepts."""
    if name.startswith("NASNet"):
        return 331 if name == "NASNetLarge" else 224
    if name in ("InceptionV3", "InceptionResNetV2"):
        return 75
    if name == "Xception":
        return 71
    return 32


def _print_groups(model, allow_inexact):
    from keras_neuronprune import channel_groups

    groups = channel_groups(model, allow_inexact=allow_inexact)
    prunable = [g for g in groups if g.prunable]
    inexact = [g for g in groups if not g.exact]
    blocked = [g for g in groups if not g.prunable]
    print(
        f"{len(groups)} channel groups: {len(prunable)} prunable, "
        f"{len(inexact)} inexact, {len(blocked)} not prunable"
    )
    print(f"{'group':<48} {'size':>6}  {'status':<10} layers / reason")
    for g in groups:
        status = "prunable" if g.prunable else "blocked"
        if not g.exact:
            status += "*"
        detail = f"{len(g.layers)} layers" if g.prunable else g.reason
        print(f"{g.name[:48]:<48} {g.size:>6}  {status:<10} {detail}")
    if inexact:
        print("* inexact: normalised across channels (allow_inexact=True)")
    return groups


def _inspect(args):
    from keras_neuronprune import count_cost

    model = load_model(args.model, args.input_size)
    _print_groups(model, args.allow_inexact)
    cost = count_cost(model)
    print(f"\n{model.name}: {cost.params:,} parameters, {cost.flops:,} FLOPs")
    return 0


def _thin(args):
    from keras_neuronprune import thin_model
    from keras_neuronprune import uniform_keep

    model = load_model(args.model, args.input_size)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.access(out_dir, os.W_OK):
        raise ValueError(f"Cannot write to {args.output!r}")
    keep = uniform_keep(
        model,
        args.ratio,
        round_to=args.round_to,
        allow_inexact=args.allow_inexact,
    )
    thin, report = thin_model(model, keep, allow_inexact=args.allow_inexact)
    print(report)
    thin.save(args.output)
    print(f"wrote {args.output}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-neuronprune",
        description="Structured pruning for Keras 3.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, help_text in (
        ("inspect", _inspect, "print channel groups and cost"),
        ("thin", _thin, "remove a uniform ratio of channels"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("model", help=".keras file or keras.applications name")
        p.add_argument("--input-size", type=int, default=None)
        p.add_argument("--allow-inexact", action="store_true")
        p.set_defaults(func=fn)
        if name == "thin":
            p.add_argument("--ratio", type=float, required=True)
            p.add_argument("--round-to", type=int, default=1)
            p.add_argument("--output", required=True)
    for module, adder in (
        ("keras_neuronprune.demo", "add_demo_parser"),
        ("keras_neuronprune.export.cli", "add_export_parser"),
    ):
        try:
            mod = __import__(module, fromlist=[adder])
        except ImportError:
            continue
        getattr(mod, adder)(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
