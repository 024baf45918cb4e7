"""Command line: `keras-neuronprune` (also `python -m keras_neuronprune`).

Sub-commands:
- `inspect MODEL`: totals (parameters, FLOPs), then the channel groups
  (prunable, inexact, blocked and why) of a `.keras` file or a
  keras.applications architecture by name (built at its standard input
  size unless `--input-shape` says otherwise); `--per-layer` adds the
  per-layer cost table.
- `thin MODEL --pruning-ratio R [--round-to N] --output PATH`: write a
  model with `R` of every prunable group's channels removed, and print the
  report.
- `demo`, `export`: see their own `--help`.

Renamed flags (`--ratio` -> `--pruning-ratio`, `--layers` ->
`--per-layer`) are still accepted for one release, with a one-line notice
on stderr.

Exit status: 0 on success, 1 when the work fails (a corrupt model file, a
failed export), 2 for a bad command line (unknown option, bad value,
missing file). Every error is one line on stderr naming the argument, the
value received and what to do. TensorFlow's C++ and converter logs are
hidden unless `--verbose`.
"""

import argparse
import difflib
import os
import sys
import time

PROG = "keras-neuronprune"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(ValueError):
    """A bad command-line argument: exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage text is in `--help`)."""

    def error(self, message):
        self.exit(
            EXIT_USAGE,
            f"{self.prog}: error: {message} (see {self.prog} --help)\n",
        )


class _RenamedFlag(argparse.Action):
    """The deprecated spelling of a flag: stores into the new flag's dest.

    It is hidden from `--help`; `renamed_flags` of the namespace maps the
    new spelling to the one the user typed, for the notice and for error
    messages that name the argument as typed.
    """

    def __init__(self, option_strings, dest, new, switch=False, **kwargs):
        self.new = new
        self.switch = switch
        kwargs.setdefault("nargs", 0 if switch else None)
        super().__init__(
            option_strings,
            dest,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
            **kwargs,
        )

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True if self.switch else values)
        renamed = dict(getattr(namespace, "renamed_flags", {}))
        renamed[self.new] = option_string
        namespace.renamed_flags = renamed


def add_renamed_flag(parser, old, new, **kwargs):
    """Accepts `old` as a deprecated spelling of the flag `new`.

    Args:
        parser: the (sub-command) parser that has `new`.
        old: the deprecated flag, e.g. `"--ratio"`.
        new: the flag that replaces it, e.g. `"--pruning-ratio"` (its
            dest is shared).
        **kwargs: `switch=True` for a `store_true` flag, or `type=`.
    """
    dest = new.lstrip("-").replace("-", "_")
    parser.add_argument(old, dest=dest, action=_RenamedFlag, new=new, **kwargs)


def flag_as_typed(args, flag):
    """`flag`, or the deprecated spelling the user typed for it."""
    return getattr(args, "renamed_flags", {}).get(flag, flag)


def renamed_flag_notes(args):
    """One deprecation sentence per renamed flag typed, in typed order."""
    return [
        f"{old} is deprecated; use {new}"
        for new, old in getattr(args, "renamed_flags", {}).items()
    ]


def _application_names():
    import keras

    return sorted(
        name
        for name in dir(keras.applications)
        if name[:1].isupper() and callable(getattr(keras.applications, name))
    )


def parse_input_shape(text, arg_name="--input-shape"):
    """`"224"`, `"224,224"`, `"224x224x3"` -> a `(height, width, channels)`.

    Raises:
        UsageError: for anything but 1 to 3 positive integers.
    """
    parts = [p for p in str(text).replace("x", ",").split(",") if p.strip()]
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        dims = []
    if not 1 <= len(dims) <= 3 or any(d < 1 for d in dims):
        raise UsageError(
            f"{arg_name} must be positive integers such as 224,224,3 (or "
            f"224 for a square RGB image). Received: {arg_name} {text!r}"
        )
    if len(dims) == 1:
        dims = [dims[0], dims[0], 3]
    elif len(dims) == 2:
        dims = dims + [3]
    return tuple(dims)


def load_model(spec, input_shape=None):
    """Loads a `.keras` file, or builds a keras.applications model by name.

    Args:
        spec: path to a `.keras` file, or an architecture name such as
            `MobileNetV2` (built with `weights=None`, offline).
        input_shape: `(height, width, channels)` for architectures; None
            uses the architecture's standard input size (224x224x3 for
            most, 299 for InceptionV3 / Xception, 331 for NASNetLarge).

    Returns:
        The model.

    Raises:
        UsageError: unknown name, missing file, or an input shape the
            architecture rejects.
        ModelFileError: the file exists but is corrupt or truncated.
    """
    from keras_neuronprune.export._common import load_model_file

    looks_like_file = spec.endswith((".keras", ".h5", ".hdf5")) or (
        os.sep in spec
    )
    if os.path.exists(spec) or looks_like_file:
        if input_shape is not None:
            raise UsageError(
                "--input-shape applies to keras.applications names only; a "
                f"saved model keeps its own. Received: model={spec!r} with "
                f"--input-shape {','.join(map(str, input_shape))}"
            )
        if not os.path.exists(spec):
            raise UsageError(
                f"model file not found. Received: model={spec!r}; give the "
                "path of a model saved with model.save('name.keras') or a "
                "keras.applications name such as MobileNetV2."
            )
        try:
            return load_model_file(spec, arg_name="model")
        except (FileNotFoundError, ValueError) as e:
            raise UsageError(str(e)) from e
    import keras

    names = _application_names()
    if spec not in names:
        close = difflib.get_close_matches(spec, names, n=3)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else (
                "give a .keras file or a keras.applications name such as "
                "MobileNetV2."
            )
        )
        raise UsageError(f"unknown model. Received: model={spec!r}; {hint}")
    builder = getattr(keras.applications, spec)
    try:
        return builder(weights=None, input_shape=input_shape)
    except ValueError as e:
        shown = ",".join(map(str, input_shape or ()))
        raise UsageError(
            f"{spec} does not accept --input-shape {shown}: "
            f"{' '.join(str(e).split())}"
        ) from e


class _Steps:
    """Timed progress lines on stderr for the slow steps of a command.

    Shown on a terminal only, so piped output and logs stay clean.
    """

    def __init__(self, quiet=False):
        try:
            interactive = sys.stderr.isatty()
        except (AttributeError, ValueError):
            interactive = False
        self.quiet = quiet or not interactive
        self.start = time.perf_counter()

    def __call__(self, message):
        if not self.quiet:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)


def _input_shape(args):
    if getattr(args, "input_shape", None) is not None:
        return parse_input_shape(args.input_shape)
    if getattr(args, "input_size", None) is not None:
        if args.input_size < 1:
            raise UsageError(
                "--input-size must be a positive integer. Received: "
                f"--input-size {args.input_size}; e.g. --input-size 224."
            )
        return (args.input_size, args.input_size, 3)
    return None


def _shape_text(model):
    try:
        shapes = [tuple(t.shape[1:]) for t in model.inputs]
    except (AttributeError, ValueError):
        return "unknown input"
    return ", ".join("x".join(str(d) for d in s) for s in shapes)


def classify_groups(groups):
    """Splits groups into disjoint `(prunable, inexact, blocked)` lists.

    `inexact` holds groups that are blocked only because they normalise
    across channels (prunable with `--allow-inexact`); a prunable inexact
    group (with the flag) counts as prunable.
    """
    prunable, inexact, blocked = [], [], []
    for g in groups:
        if g.prunable:
            prunable.append(g)
        elif not g.exact and str(g.reason or "").startswith("inexact"):
            inexact.append(g)
        else:
            blocked.append(g)
    return prunable, inexact, blocked


def format_groups(groups, max_prunable=40):
    """The groups header and table of `inspect` (a list of lines).

    Every blocked or inexact group is listed (with its reason); at most
    `max_prunable` prunable ones (None: all).
    """
    prunable, inexact, blocked = classify_groups(groups)
    channels = sum(g.size for g in prunable)
    marked = sum(1 for g in prunable if not g.exact)
    head = (
        f"{len(groups)} channel groups: {len(prunable)} prunable "
        f"({channels:,} channels)"
    )
    if marked:
        head += f", {marked} of them inexact*"
    if inexact:
        head += f", {len(inexact)} inexact (prunable with --allow-inexact)"
    head += f", {len(blocked)} blocked"
    lines = [head]
    width = max([len("group")] + [len(g.name[:40]) for g in groups])
    lines.append(
        f"  {'group':<{width}}  {'channels':>8}  {'status':<9}  detail"
    )
    listed = 0
    for g in groups:
        if g.prunable:
            listed += 1
            if max_prunable is not None and listed > max_prunable:
                continue
            status = "prunable*" if not g.exact else "prunable"
            detail = f"{len(g.layers)} layers"
        else:
            status = "inexact" if g in inexact else "blocked"
            detail = g.reason or ""
        lines.append(
            f"  {g.name[:40]:<{width}}  {g.size:>8,}  {status:<9}  {detail}"
        )
    if max_prunable is not None and listed > max_prunable:
        lines.append(
            f"  ... {listed - max_prunable} more prunable groups "
            "(--per-layer lists them all)"
        )
    if marked:
        lines.append(
            "  * normalised across channels: pruning changes the values of "
            "the channels kept"
        )
    return lines


def _inspect(args, steps):
    from keras_neuronprune import channel_groups
    from keras_neuronprune import count_cost

    shape = _input_shape(args)
    steps(f"loading {args.model}")
    model = load_model(args.model, shape)
    steps(f"finding channel groups of {model.name} ({_shape_text(model)})")
    groups = channel_groups(model, allow_inexact=args.allow_inexact)
    steps("counting parameters and FLOPs")
    try:
        cost = count_cost(model)
    except ValueError:
        cost = None
    if cost is not None:
        print(
            f"{model.name} ({_shape_text(model)}): {cost.params:,} "
            f"parameters, {cost.flops:,} FLOPs (multiply-add = 2, batch 1)"
        )
    else:
        print(
            f"{model.name} ({_shape_text(model)}): "
            f"{model.count_params():,} parameters, FLOPs unknown (the input "
            "size is not fixed)"
        )
    limit = None if args.per_layer else 40
    print("\n".join(format_groups(groups, limit)))
    if args.per_layer and cost is not None:
        print()
        print(cost)
    elif cost is not None:
        print("(--per-layer adds the per-layer cost table)")
    return EXIT_OK


def _thin(args, steps):
    from keras_neuronprune import thin_model
    from keras_neuronprune import uniform_keep
    from keras_neuronprune.export._common import check_output_path

    flag = flag_as_typed(args, "--pruning-ratio")
    if not 0 <= args.pruning_ratio < 1:
        raise UsageError(
            f"{flag} must be in [0, 1) (the fraction of each prunable "
            f"group's channels to remove). Received: {flag} "
            f"{args.pruning_ratio}; e.g. {flag} 0.5."
        )
    if args.round_to < 1:
        raise UsageError(
            "--round-to must be a positive integer. Received: --round-to "
            f"{args.round_to}; e.g. --round-to 8."
        )
    try:
        output = check_output_path(args.output, ".keras", arg_name="--output")
    except (TypeError, ValueError) as e:
        raise UsageError(" ".join(str(e).replace("`", "").split())) from e
    shape = _input_shape(args)
    steps(f"loading {args.model}")
    model = load_model(args.model, shape)
    steps(f"choosing channels ({_shape_text(model)})")
    keep = uniform_keep(
        model,
        args.pruning_ratio,
        round_to=args.round_to,
        allow_inexact=args.allow_inexact,
    )
    steps(f"thinning {len(keep)} channel groups")
    thin, report = thin_model(model, keep, allow_inexact=args.allow_inexact)
    steps(f"saving {args.output}")
    thin.save(output)
    if args.per_layer:
        print(report.table())
    else:
        print(report.summary(more="--per-layer"))
    print(f"wrote {args.output}")
    stem = os.path.splitext(args.output)[0]
    print(
        f"next: {PROG} export {args.output} --format tflite --output "
        f"{stem}.tflite"
    )
    return EXIT_OK


def _verbose_parent():
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show TensorFlow's C++ and converter logs",
    )
    return parent


def build_parser():
    """The `keras-neuronprune` argument parser (sub-commands included)."""
    verbose = _verbose_parent()
    parser = _Parser(
        prog=PROG,
        description="Structured pruning for Keras 3.",
        epilog=(
            "Exit status: 0 success, 1 failure, 2 bad command line. "
            "Errors are one line on stderr."
        ),
        parents=[verbose],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, help_text in (
        ("inspect", _inspect, "print totals, channel groups and cost"),
        ("thin", _thin, "remove a uniform ratio of channels"),
    ):
        p = sub.add_parser(name, help=help_text, parents=[verbose])
        p.add_argument("model", help=".keras file or keras.applications name")
        p.add_argument(
            "--input-shape",
            default=None,
            metavar="H,W,C",
            help=(
                "input shape for keras.applications names (default: the "
                "architecture's standard size, e.g. 224,224,3)"
            ),
        )
        p.add_argument(
            "--input-size",
            type=int,
            default=None,
            metavar="N",
            help="square input side (same as --input-shape N,N,3)",
        )
        p.add_argument(
            "--allow-inexact",
            action="store_true",
            help="also prune groups normalised across channels",
        )
        p.add_argument(
            "--per-layer",
            action="store_true",
            help="print the full per-layer table",
        )
        add_renamed_flag(p, "--layers", "--per-layer", switch=True)
        p.add_argument("--quiet", action="store_true", help="no progress lines")
        p.set_defaults(func=fn, steps=True)
        if name == "thin":
            # Checked in `main` (not by argparse), so a missing flag is
            # named the same way whichever spelling the user knows.
            p.add_argument(
                "--pruning-ratio",
                type=float,
                default=None,
                metavar="R",
                help="fraction of each prunable group's channels to remove "
                "(required)",
            )
            add_renamed_flag(p, "--ratio", "--pruning-ratio", type=float)
            p.add_argument("--round-to", type=int, default=1)
            p.add_argument("--output", default=None, help="a .keras path")
            p.set_defaults(required_flags=("--pruning-ratio", "--output"))
    for module, adder in (
        ("keras_neuronprune.demo", "add_demo_parser"),
        ("keras_neuronprune.export.cli", "add_export_parser"),
    ):
        try:
            mod = __import__(module, fromlist=[adder])
        except ImportError:
            continue
        added = getattr(mod, adder)(sub)
        added.add_argument(
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show TensorFlow's C++ and converter logs",
        )
    return parser


def _error(command, message, args=None):
    text = " ".join(str(message).replace("`", "").split())
    prefix = f"{PROG} {command}" if command else PROG
    # An error stays one line: the renamed-flag notice joins it.
    notes = renamed_flag_notes(args)
    if notes:
        text += f" ({'; '.join(notes)})"
    print(f"{prefix}: error: {text}", file=sys.stderr)


def _missing_flags(args):
    """The required flags of `args.command` that were not given."""
    return [
        flag
        for flag in getattr(args, "required_flags", ())
        if getattr(args, flag.lstrip("-").replace("-", "_"), None) is None
    ]


def main(argv=None):
    """Runs the command line; returns the exit status (0, 1 or 2)."""
    from keras_neuronprune.export._common import ModelFileError
    from keras_neuronprune.utils import tf_logging

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    verbose = bool(getattr(args, "verbose", False))
    tf_logging.set_verbose(verbose)
    tf_logging.quiet_tensorflow(verbose)
    command = getattr(args, "command", None)
    missing = _missing_flags(args)
    if missing:
        _error(
            command,
            f"the following arguments are required: {', '.join(missing)} "
            f"(see {PROG} {command} --help)",
            args,
        )
        return EXIT_USAGE
    try:
        if getattr(args, "steps", False):
            result = args.func(args, _Steps(args.quiet))
        else:
            result = args.func(args)
    except UsageError as e:
        _error(command, e, args)
        return EXIT_USAGE
    except (ValueError, TypeError) as e:
        # Library checks of values that came from the command line.
        _error(command, e, args)
        return EXIT_USAGE if command == "demo" else EXIT_FAILURE
    except KeyboardInterrupt:
        _error(command, "interrupted", args)
        return EXIT_FAILURE
    except ModelFileError as e:
        _error(command, e, args)
        return EXIT_FAILURE
    except Exception as e:  # a failure of the work itself: one line
        _error(command, f"{type(e).__name__}: {e}", args)
        return EXIT_FAILURE
    for note in renamed_flag_notes(args):
        print(f"{PROG} {command}: warning: {note}", file=sys.stderr)
    # Sub-commands return an exit status or, like `demo`, a result dict.
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
