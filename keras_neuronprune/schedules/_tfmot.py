"""Conversion of tfmot pruning schedules to keras_neuronprune ones (private).

tfmot schedules are recognised by their class (module and name), never by
importing tfmot: importing it switches TensorFlow to legacy Keras 2.
Their arguments are read from `get_config()` (tfmot's format:
`{"class_name": ..., "config": {...}}`), so the converted schedule gives
the same `(should_prune, ratio)` at every step and, being registered under
`keras_neuronprune`, saves and loads with the model.
"""

_TFMOT_MODULE = "tensorflow_model_optimization"


def is_tfmot_schedule(schedule):
    """Whether `schedule` is an instance of a tfmot pruning schedule class."""
    return any(
        cls.__module__.startswith(_TFMOT_MODULE)
        and cls.__name__ == "PruningSchedule"
        for cls in type(schedule).__mro__
    )


def _tfmot_config(schedule):
    config = schedule.get_config()
    if isinstance(config, dict) and isinstance(config.get("config"), dict):
        config = config["config"]
    return dict(config)


def from_tfmot(schedule):
    """Converts a tfmot `PolynomialDecay` or `ConstantSparsity`.

    Args:
        schedule: a tfmot pruning schedule.

    Returns:
        The equivalent `keras_neuronprune.schedules.PolynomialDecay` (with
        `prune_at_end_step=False`, as tfmot) or
        `keras_neuronprune.sparsity.schedules.ConstantSparsity`.

    Raises:
        ValueError: for a tfmot schedule class without an equivalent (a
            user subclass of tfmot's `PruningSchedule`), naming the class
            and what to use instead.
    """
    from keras_neuronprune.schedules.polynomial_decay import PolynomialDecay

    name = type(schedule).__name__
    cls = type(schedule)
    if cls.__module__.startswith(_TFMOT_MODULE) and name == "PolynomialDecay":
        c = _tfmot_config(schedule)
        return PolynomialDecay(
            initial_pruning_ratio=float(c["initial_sparsity"]),
            final_pruning_ratio=float(c["final_sparsity"]),
            begin_step=int(c["begin_step"]),
            end_step=int(c["end_step"]),
            power=c.get("power", 3),
            frequency=int(c.get("frequency", 100)),
            prune_at_end_step=False,
        )
    if cls.__module__.startswith(_TFMOT_MODULE) and name == "ConstantSparsity":
        from keras_neuronprune.sparsity.schedules import ConstantSparsity

        c = _tfmot_config(schedule)
        return ConstantSparsity(
            target_sparsity=float(c["target_sparsity"]),
            begin_step=int(c["begin_step"]),
            end_step=int(c.get("end_step", -1)),
            frequency=int(c.get("frequency", 100)),
        )
    raise ValueError(
        f"The tfmot schedule {cls.__module__}.{name} has no keras_neuronprune "
        "equivalent, so a model pruned with it could not be saved and "
        "loaded. Use keras_neuronprune.schedules.PolynomialDecay, OneShot, "
        "Iterative, keras_neuronprune.sparsity.schedules.ConstantSparsity, or "
        "subclass keras_neuronprune.schedules.PruningSchedule. Received: "
        f"schedule={schedule!r}"
    )
