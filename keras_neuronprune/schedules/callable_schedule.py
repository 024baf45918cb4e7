"""`CallableSchedule`: a user function `step -> (should_prune, ratio)`."""

import inspect

import keras

from keras_neuronprune.schedules.base_pruning_schedule import PruningSchedule


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class CallableSchedule(PruningSchedule):
    """Wraps any callable with tfmot's schedule signature.

    `prune_structured` wraps a schedule that is not a `PruningSchedule` in
    this class, so every schedule of a `PrunedModel` has the same interface.
    It is called exactly like the wrapped callable. A model using it saves
    only when the callable can be found again at load time (a function or
    class registered with `keras.saving.register_keras_serializable`);
    otherwise `get_config`, and
    so `model.save`, raises before anything is written, rather than writing
    a checkpoint that cannot be loaded.

    Args:
        fn: the callable `fn(step) -> (should_prune, ratio)`.

    Raises:
        ValueError: if `fn` is not callable.

    Example:
    ```python
    @keras.saving.register_keras_serializable(package="my_project")
    def every_100_steps(step):
        return step % 100 == 0, min(0.5, step / 2000)

    schedule = keras_neuronprune.schedules.CallableSchedule(every_100_steps)
    schedule(200)  # (True, 0.1)
    ```
    """

    def __init__(self, fn):
        if isinstance(fn, dict):
            fn = keras.saving.deserialize_keras_object(fn)
        if not callable(fn):
            raise ValueError(
                "`fn` must be a callable `fn(step) -> (should_prune, ratio)`. "
                f"Received: fn={fn!r}"
            )
        self.fn = fn

    def __call__(self, step):
        return self.fn(step)

    def get_config(self):
        error = None
        try:
            config = keras.saving.serialize_keras_object(self.fn)
            restored = keras.saving.deserialize_keras_object(
                config, safe_mode=True
            )
        except Exception as e:  # noqa: BLE001 - any failure means unsavable
            config, restored, error = None, None, e
        if inspect.isfunction(self.fn) or inspect.ismethod(self.fn):
            loadable = restored is self.fn or restored == self.fn
        else:
            loadable = restored is not None and type(restored) is type(self.fn)
        if not loadable:
            raise ValueError(
                f"The pruning schedule {self.fn!r} cannot be saved: it would "
                "not be found again when the model is loaded (a lambda, a "
                "nested function or an unregistered object). Use a "
                "keras_neuronprune.schedules class, or register the "
                "function or class with "
                "`@keras.saving.register_keras_serializable()`."
                + (f" ({type(error).__name__}: {error})" if error else "")
            )
        return {"fn": config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"CallableSchedule({self.fn!r})"
