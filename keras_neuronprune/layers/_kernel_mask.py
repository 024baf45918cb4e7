"""The learned kernel mask's straight-through step (private).

Reference:
    Tang et al., "Automatic Sparse Connectivity Learning for Neural
    Networks", arXiv:2201.05020 (step mask with a straight-through
    gradient and a connection-count penalty).
"""

from keras import ops

KERNEL_MASK = "kernel_mask"
MASK_SCORE = "kernel_mask_score"
MASK_PENALTY = "mask_penalty"
MASK_FROZEN = "mask_frozen"
KERNEL_MASK_NAMES = (KERNEL_MASK, MASK_SCORE, MASK_PENALTY, MASK_FROZEN)
_EPSILON = 1e-12


def _step(x):
    return ops.cast(ops.greater(x, 0.0), x.dtype)


def make_mask_ste(reduce_axes, normalize):
    """Unit step with a straight-through gradient plus a count penalty.

    Forward: `step(score)`. Backward: the identity straight-through
    estimator `dL/dscore := dL/dM`, optionally divided, for every output
    feature (neuron or filter), by the root mean square of that feature's
    incoming mask gradients, plus `penalty`: the gradient of
    `penalty * sum(step(score))` under the identity estimator. The RMS is
    this library's choice for the per-feature normalisation of Sparse
    Connectivity Learning, whose exact form is unpublished; it keeps the
    sign and relative size of a feature's gradients and gives every
    feature a gradient scale of 1, so `penalty` is measured in that unit.

    Args:
        reduce_axes: the kernel axes that index the inputs of one output
            feature (all but the output axes).
        normalize: divide each feature's gradients by their RMS.

    Returns:
        A function `(score, penalty) -> step(score)` with that gradient.
    """

    @ops.custom_gradient
    def mask_ste(score, penalty):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            if normalize:
                rms = ops.sqrt(
                    ops.mean(
                        ops.square(upstream), axis=reduce_axes, keepdims=True
                    )
                )
                upstream = upstream / (rms + _EPSILON)
            return upstream + penalty, ops.zeros_like(penalty)

        return _step(score), grad

    return mask_ste
