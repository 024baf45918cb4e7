"""Cost of one call of one layer."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """Parameters and FLOPs of one layer call, as counted by `count_cost`.

    A layer called several times (a shared layer) gives one `LayerCost` per
    call site; its parameters are counted on the first one only
    (`call_index == 0`).

    Attributes:
        name: the layer name; inside a nested model `"outer/inner"`.
        class_name: the layer's class name, e.g. `"Conv2D"`.
        params: number of weight scalars (trainable and non-trainable)
            counted for this row.
        flops: floating-point operations of this call at batch size 1
            (a multiply-add counts 2). 0 for layers with no FLOP rule, which
            are listed in `ModelCost.uncounted`.
        input_shapes: shapes of the call's input tensors (batch set to 1).
        output_shapes: shapes of the call's output tensors (batch set to 1).
        channels_in: size of the channel axis of the first input (None for
            inputs of rank < 2).
        channels_out: size of the channel axis of the first output.
        call_index: 0 for the first call of the layer in the model, 1 for
            the second...
    """

    name: str
    class_name: str
    params: int
    flops: int
    input_shapes: tuple
    output_shapes: tuple
    channels_in: int | None
    channels_out: int | None
    call_index: int = 0

    @property
    def input_shape(self):
        """Shape of the first input tensor."""
        return self.input_shapes[0] if self.input_shapes else None

    @property
    def output_shape(self):
        """Shape of the first output tensor."""
        return self.output_shapes[0] if self.output_shapes else None

    def to_dict(self):
        """Returns a JSON-serialisable dict of the fields."""
        return {
            "name": self.name,
            "class_name": self.class_name,
            "params": self.params,
            "flops": self.flops,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shapes": [list(s) for s in self.output_shapes],
            "channels_in": self.channels_in,
            "channels_out": self.channels_out,
            "call_index": self.call_index,
        }
