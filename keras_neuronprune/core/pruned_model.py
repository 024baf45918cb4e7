"""`PrunedModel`: a functional model that carries its pruning controller."""

import keras

from keras_neuronprune.core.pruning_controller import deserialize_controller
from keras_neuronprune.core.pruning_controller import serialize_controller


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class PrunedModel(keras.Model):
    """A functional Keras model under pruning.

    It is an ordinary functional model (it trains, saves and loads like one)
    with two additions: `controller`, the `PruningController` that decides
    what to prune, and `pruning_step`, a non-trainable int64 variable that
    counts training steps so a saved model resumes its schedule.

    Args:
        inputs: the functional inputs.
        outputs: the functional outputs.
        name: model name.
        controller: a `PruningController` (keyword argument).
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        controller = kwargs.pop("controller", None)
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.controller = controller
        self.pruning_step = keras.Variable(
            0, dtype="int64", trainable=False, name="pruning_step"
        )

    def save(self, filepath, *args, **kwargs):
        # Keras opens the file before it serialises the model: check the
        # controller (and its schedule) first, so a configuration that
        # cannot be saved leaves no unreadable checkpoint behind.
        serialize_controller(self.controller)
        return super().save(filepath, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["controller"] = serialize_controller(self.controller)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from keras_neuronprune.graph._keras_graph import functional_from_config

        config = dict(config)
        controller = deserialize_controller(config.pop("controller", None))
        model = functional_from_config(cls, config, custom_objects)
        model.controller = controller
        return model
