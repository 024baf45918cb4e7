"""Per-layer sparsities for a global target (private).

Reference:
    Evci et al., "Rigging the Lottery: Making All Tickets Winners",
    arXiv:1911.11134 (Erdos-Renyi-Kernel), following the authors' code
    (google-research/rigl `sparse_utils.get_sparsities_erdos_renyi`).
"""

import numpy as np


def uniform_sparsities(shapes, sparsity):
    return {name: float(sparsity) for name in shapes}


def erk_sparsities(shapes, sparsity, power_scale=1.0):
    """Erdos-Renyi-Kernel layer sparsities.

    Each layer's density is `eps * (sum(shape) / prod(shape)) ** power`,
    with `eps` chosen so that the total number of kept weights equals
    `(1 - sparsity) * total`. A layer whose density would exceed 1 is made
    dense and `eps` is solved again over the remaining layers (the layers
    with the largest raw density go first, as in the authors' code).

    Args:
        shapes: dict layer name -> kernel shape.
        sparsity: global target sparsity in [0, 1).
        power_scale: exponent on the raw Erdos-Renyi ratio (1 in RigL).

    Returns:
        dict layer name -> sparsity (0 for the layers made dense).
    """
    sparsity = float(sparsity)
    dense = set()
    while True:
        divisor = 0.0
        rhs = 0.0
        raw = {}
        for name, shape in shapes.items():
            n_param = float(np.prod(shape))
            n_zeros = np.floor(sparsity * n_param)
            if name in dense:
                rhs -= n_zeros
            else:
                rhs += n_param - n_zeros
                raw[name] = (np.sum(shape) / np.prod(shape)) ** power_scale
                divisor += raw[name] * n_param
        if not raw:
            break
        eps = rhs / divisor
        max_raw = max(raw.values())
        if max_raw * eps > 1.0:
            dense.update(name for name, p in raw.items() if p == max_raw)
        else:
            break
    return {
        name: 0.0 if name in dense else float(1.0 - eps * raw[name])
        for name in shapes
    }


def layer_sparsities(shapes, sparsity, distribution):
    if distribution == "erk":
        return erk_sparsities(shapes, sparsity)
    return uniform_sparsities(shapes, sparsity)
