"""Batches of `(x, y)` for the data-driven methods (private)."""


def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def is_single_batch(data):
    return (
        isinstance(data, tuple)
        and len(data) in (2, 3)
        and _is_array(data[0])
        and _is_array(data[1])
    )


class DataCycler:
    """Yields `(x, y)` batches from `data` forever, restarting at the end.

    `data` is a tuple `(x, y)` of arrays (one batch, returned every time),
    or any iterable of `(x, y)` / `(x, y, sample_weight)` batches: a
    `tf.data.Dataset`, a `keras.utils.PyDataset`, a list or a generator
    function's iterable.
    """

    def __init__(self, data, argument="data"):
        if data is None:
            raise ValueError(f"`{argument}` is required. Received: None")
        self.data = data
        self._iterator = None
        if not is_single_batch(data):
            try:
                iter(data)
            except TypeError as error:
                raise TypeError(
                    f"`{argument}` must be a tuple (x, y) of arrays or an "
                    "iterable of (x, y) batches. Received: "
                    f"{argument} of type {type(data).__name__}"
                ) from error

    def next_batch(self):
        if is_single_batch(self.data):
            return self.data[0], self.data[1]
        for _ in range(2):
            if self._iterator is None:
                self._iterator = iter(self.data)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                continue
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError(
                    "Every batch of `data` must be (x, y) or "
                    f"(x, y, sample_weight). Received a {type(batch).__name__}"
                )
            return batch[0], batch[1]
        raise ValueError("`data` yielded no batch.")

    def batches(self, count):
        return [self.next_batch() for _ in range(int(count))]
