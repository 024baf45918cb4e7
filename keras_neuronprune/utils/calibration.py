"""Validation and batching of the calibration data given to criteria."""

import numpy as np


def _to_numpy(value):
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_numpy(v) for v in value]
    if hasattr(value, "numpy"):
        return value.numpy()
    return np.asarray(value)


def _iterate(data):
    if hasattr(data, "as_numpy_iterator"):
        yield from data.as_numpy_iterator()
        return
    if hasattr(data, "__getitem__") and hasattr(data, "num_batches"):
        # keras.utils.PyDataset
        for i in range(len(data)):
            yield data[i]
        return
    yield from data


def _split_batch(batch, criterion):
    if isinstance(batch, np.ndarray) or hasattr(batch, "shape"):
        return batch, None
    if isinstance(batch, (list, tuple)) and len(batch) in (2, 3):
        return batch[0], batch[1]
    raise ValueError(
        f"`data` for {criterion} must yield `(x, y)` batches. Received a "
        f"batch of type {type(batch).__name__}"
        + (f" with {len(batch)} elements" if hasattr(batch, "__len__") else "")
    )


def _check_x(x, model, criterion):
    inputs = list(getattr(model, "inputs", None) or [])
    xs = list(x.values()) if isinstance(x, dict) else x
    xs = xs if isinstance(xs, list) else [xs]
    if inputs and len(xs) != len(inputs):
        raise ValueError(
            f"Calibration data for {criterion} has {len(xs)} input arrays but "
            f"the model has {len(inputs)} inputs."
        )
    n = None
    for i, arr in enumerate(xs):
        arr = np.asarray(arr)
        if arr.dtype.kind not in "fiu":
            raise ValueError(
                f"Calibration inputs for {criterion} must be real numbers "
                f"(float or int). Received: dtype={arr.dtype} for input {i}"
            )
        if inputs:
            expected = tuple(inputs[i].shape)
            if arr.ndim != len(expected) or any(
                e is not None and e != a
                for e, a in zip(expected[1:], arr.shape[1:])
            ):
                raise ValueError(
                    f"Calibration inputs for {criterion} do not match the "
                    f"model input {i}: expected shape {expected} (None = any), "
                    f"received shape {arr.shape}"
                )
        if n is None:
            n = arr.shape[0]
        elif arr.shape[0] != n:
            raise ValueError(
                f"Calibration inputs for {criterion} have different batch "
                f"sizes ({n} and {arr.shape[0]})."
            )
    return n


def calibration_batches(
    data,
    model,
    criterion,
    min_samples=1,
    max_samples=None,
    needs_targets=False,
    batch_size=64,
):
    """Materialises calibration data as a list of NumPy `(x, y)` batches.

    `data` may be an iterable of `(x, y)` (or `(x, y, sample_weight)`)
    batches, a `tf.data.Dataset`, a `keras.utils.PyDataset`, an iterable of
    bare `x` batches (for forward-only criteria), or a single `(x, y)` tuple
    of arrays (split into batches of `batch_size`). It is read once and
    kept, because most criteria pass over it several times.

    Args:
        data: the calibration data (see above).
        model: the model that will consume `x` (its input shapes are
            checked).
        criterion: name used in error messages.
        min_samples: fewest samples for a stable estimate.
        max_samples: stop reading after this many samples (the last batch
            is trimmed).
        needs_targets: whether `y` must be present.
        batch_size: batch size used to split a single `(x, y)` tuple.

    Returns:
        A list of `(x, y)` with NumPy arrays (`y` may be None).

    Raises:
        ValueError: when `data` is None or empty, malformed, of the wrong
            shape or dtype, lacks targets, or has fewer than `min_samples`
            samples.
    """
    if data is None:
        raise ValueError(
            f"`data` is required: {criterion} scores channels from "
            "calibration data. Pass an iterable of `(x, y)` batches. "
            "Received: data=None"
        )
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(hasattr(d, "shape") and hasattr(d, "__len__") for d in data)
        and np.ndim(data[0]) >= 1
        and len(data[0]) == len(data[1])
    ):
        x, y = _to_numpy(data[0]), _to_numpy(data[1])
        data = [
            (x[i : i + batch_size], y[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        ]
    batches, total = [], 0
    for batch in _iterate(data):
        x, y = _split_batch(batch, criterion)
        x, y = _to_numpy(x), _to_numpy(y)
        n = _check_x(x, model, criterion)
        if needs_targets and y is None:
            raise ValueError(
                f"{criterion} needs targets: `data` must yield `(x, y)` "
                "batches, not bare inputs."
            )
        if y is not None and np.shape(y)[:1] != (n,):
            raise ValueError(
                f"Calibration targets for {criterion} have "
                f"{np.shape(y)[:1]} rows but the inputs have {n}."
            )
        if max_samples is not None and total + n > max_samples:
            n = max_samples - total
            x = _take(x, n)
            y = None if y is None else y[:n]
        if n > 0:
            batches.append((x, y))
            total += n
        if max_samples is not None and total >= max_samples:
            break
    if total == 0:
        raise ValueError(
            f"`data` for {criterion} is empty: it yielded no samples."
        )
    if total < min_samples:
        raise ValueError(
            f"{criterion} needs at least {min_samples} calibration samples "
            f"for a stable estimate; `data` yielded only {total}."
        )
    return batches


def _take(x, n):
    if isinstance(x, dict):
        return {k: v[:n] for k, v in x.items()}
    if isinstance(x, list):
        return [v[:n] for v in x]
    return x[:n]


def num_samples(batches):
    """Number of samples in a list of `(x, y)` batches."""
    total = 0
    for x, _ in batches:
        first = next(iter(x.values())) if isinstance(x, dict) else x
        first = first[0] if isinstance(first, list) else first
        total += len(first)
    return total
