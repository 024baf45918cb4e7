"""Command-line helpers shared by the tflite_bench tools."""

import argparse


def int_at_least(minimum):
    """An argparse type: an int >= `minimum`, else a message naming it."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be an int >= {minimum}. Received: {text!r}"
            )
        return value

    return parse


def open_unit_float(text):
    """An argparse type: a float in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"must be in (0, 1). Received: {text!r}"
        )
    return value


def print_results(markdown_text, paths):
    """Prints a run's markdown report and the files it wrote."""
    print()
    print(markdown_text)
    print("results:")
    for kind, path in paths.items():
        print(f"  {kind}: {path}")
