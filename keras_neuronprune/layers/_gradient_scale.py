"""Gradient scaling in `keras.ops` (private).

`scale_gradient(x, k)` returns a tensor equal to `x` whose gradient is `k`
times the incoming one: `x + (k - 1) * (x - stop_gradient(x))`. The forward
value is exactly `x` (the added term is exactly zero), so inference is not
affected. Under SGD (with or without momentum) scaling a parameter's
gradient by `k` is the same as a `k` times larger learning rate for it,
which is how RNI's "10x learning rate on the SigBN parameters" is done
without a second optimizer. Adaptive optimizers (Adam, RMSprop) divide the
scale out again, so there it has almost no effect.
"""

from keras import ops


def scale_gradient(x, factor):
    if factor == 1.0:
        return x
    return x + (factor - 1.0) * (x - ops.stop_gradient(x))


class GradientScaledRegularizer:
    """Applies a regulariser to `scale_gradient(variable, factor)`.

    Set as `variable.regularizer` so the penalty's gradient is scaled like
    the loss gradient. Not serialised: the layer config keeps the plain
    regulariser and re-wraps it on build.
    """

    def __init__(self, regularizer, factor):
        self.regularizer = regularizer
        self.factor = float(factor)

    def __call__(self, x):
        return self.regularizer(scale_gradient(x, self.factor))

    def get_config(self):
        return self.regularizer.get_config()
