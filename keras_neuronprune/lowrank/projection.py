"""LRPET's low-rank projection with energy transfer (the math and the
in-place step used during training)."""

import keras
import numpy as np

from keras_neuronprune.graph import _keras_graph

# Convolutions and dense layers whose kernel is a (P x N) map per output.
SUPPORTED = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Dense,
)
_TRANSPOSED = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


def supports(layer):
    """Whether LRPET can project / factorise this layer."""
    if isinstance(layer, _TRANSPOSED) or not isinstance(layer, SUPPORTED):
        return False
    if isinstance(layer, keras.layers.Dense):
        return len(layer.kernel.shape) == 2
    return (
        getattr(layer, "groups", 1) == 1
        and layer.data_format == "channels_last"
    )


def kernel_matrix(kernel):
    """The `N x P` matrix of a Conv/Dense kernel (one row per output)."""
    kernel = np.asarray(kernel)
    return kernel.reshape(-1, kernel.shape[-1]).T


def matrix_to_kernel(matrix, shape):
    """Inverse of `kernel_matrix`."""
    return np.asarray(matrix).T.reshape(shape)


def target_rank(n_singular, prune_goal):
    """LRPET's kept rank: `floor(n - n * prune_goal)`, at least 1."""
    return max(1, int(np.floor(n_singular - n_singular * prune_goal)))


def energy_transfer_projection(matrix, rank, reduction_factor=0.0):
    """Projects a matrix to rank `rank` keeping its energy (sum sigma^2).

    With `S = S_head + S_tail` (the top `rank` singular values and the
    rest): `S_tail <- reduction_factor * S_tail` and `S_head <- sqrt(a) *
    S_head`, `a = (|S|^2 - |reduction_factor S_tail|^2) / |S_head|^2`, so
    the Frobenius norm is unchanged. `reduction_factor=0` (LRPET's default)
    is a hard truncation whose lost energy moves to the kept directions.

    Args:
        matrix: 2-D array.
        rank: number of singular values kept, >= 1.
        reduction_factor: factor applied to the tail, in [0, 1].

    Returns:
        `(projected, singular_values_before)`.

    Reference:
        Guo et al., "Compact Model Training by Low-Rank Projection with
        Energy Transfer", IEEE TNNLS 2024, https://arxiv.org/abs/2204.05566
    """
    m = np.asarray(matrix, "float64")
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    rank = int(min(max(rank, 1), len(s)))
    head, tail = s[:rank], s[rank:] * reduction_factor
    head_energy = float(np.sum(head**2))
    if head_energy > 0:
        a = (float(np.sum(s**2)) - float(np.sum(tail**2))) / head_energy
        head = head * np.sqrt(a)
    new_s = np.concatenate([head, tail])
    return (u * new_s) @ vt, s


def conv_bn_pairs(model):
    """Maps each supported layer name to the BatchNormalization after it.

    Only a BN that is the sole consumer of the layer's output (with the
    channel axis last) is paired, so rescaling by it is exact.
    """
    functional = _keras_graph.as_functional(model)
    sites = list(_keras_graph.call_sites(functional))
    uses = {}
    for site in sites:
        for t in site.inputs:
            uses[id(t)] = uses.get(id(t), 0) + 1
    pairs = {}
    for site in sites:
        op = site.operation
        if not isinstance(op, keras.layers.BatchNormalization):
            continue
        if op.axis not in (-1, len(site.inputs[0].shape) - 1):
            continue
        tensor = site.inputs[0]
        producer = _keras_graph.tensor_producer(tensor)[0]
        if (
            isinstance(producer, keras.layers.Layer)
            and supports(producer)
            and producer.activation in (None, keras.activations.linear)
            and uses.get(id(tensor), 0) == 1
        ):
            pairs[producer.name] = op
    return pairs


def bn_scale(bn):
    """Per-channel inference scale `gamma / sqrt(var + eps)` of a BN."""
    var = np.asarray(bn.moving_variance.numpy(), "float64")
    scale = 1.0 / np.sqrt(var + bn.epsilon)
    if bn.scale:
        scale = scale * np.asarray(bn.gamma.numpy(), "float64")
    return scale


def project_layer(
    layer, prune_goal=None, rank=None, bn=None, reduction_factor=0.0, eps=1e-12
):
    """Projects one layer's kernel in place (LRPET steps 1-4).

    1. BN rectification: `W' = diag(alpha) W` with `alpha` the following
       BatchNormalization's scale (if `bn` is given).
    2. SVD of `W'`, keep `rank` (or `target_rank(n, prune_goal)`) values.
    3. Energy transfer (`energy_transfer_projection`).
    4. `W = diag(alpha / (alpha^2 + eps)) W'`, written back (dense shape).

    Returns:
        dict with `rank`, `singular_values` (of `W'` before) and
        `energy_before` / `energy_after` of `W'`.
    """
    kernel = np.asarray(layer.kernel.numpy())
    m = kernel_matrix(kernel).astype("float64")
    alpha = bn_scale(bn) if bn is not None else np.ones(m.shape[0])
    rectified = alpha[:, None] * m
    n = min(rectified.shape)
    if rank is None:
        rank = target_rank(n, prune_goal)
    projected, s = energy_transfer_projection(rectified, rank, reduction_factor)
    undo = alpha / (alpha**2 + eps) if bn is not None else np.ones_like(alpha)
    new = undo[:, None] * projected
    layer.kernel.assign(
        matrix_to_kernel(new, kernel.shape).astype(kernel.dtype)
    )
    return {
        "rank": int(min(rank, n)),
        "singular_values": s,
        "energy_before": float(np.sum(s**2)),
        "energy_after": float(np.sum(projected**2)),
    }
