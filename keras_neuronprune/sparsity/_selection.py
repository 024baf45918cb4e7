"""Turning importance scores into binary masks (private).

Three patterns are supported:

* element: every weight is kept or pruned on its own;
* block `(rows, cols)`: the kernel is viewed as a 2-D matrix
  `(fan-in positions, output features)` (for a depthwise kernel
  `(spatial positions, channels * multiplier)`) cut into `rows x cols`
  tiles; a tile's score is the mean of its scores (tfmot's "AVG" pooling)
  and a tile is kept or pruned as a whole;
* m-by-n `(m, n)` (tfmot's `sparsity_m_by_n` convention): in every group
  of `n` consecutive weights along the input-channel axis, the `m` with the
  lowest scores are pruned, so at most `n - m` are non-zero. (2, 4) is the
  2:4 pattern of NVIDIA Ampere sparse tensor cores.

Scores: higher means more important. Entries that must stay pruned get
`-inf`. Ties are broken by position (stable sort), so the selection is
deterministic.
"""

import numpy as np


def num_pruned(size, sparsity):
    """Number of units to prune: `size * sparsity` rounded half up."""
    return int(np.floor(size * float(sparsity) + 0.5))


def kernel_matrix_shape(shape, num_output_axes):
    rows = int(np.prod(shape[: len(shape) - num_output_axes]))
    cols = int(np.prod(shape[len(shape) - num_output_axes :]))
    return rows, cols


def check_block_size(layer_name, shape, num_output_axes, block_size):
    rows, cols = kernel_matrix_shape(shape, num_output_axes)
    br, bc = block_size
    if rows % br or cols % bc:
        raise ValueError(
            f"Layer {layer_name!r} cannot be pruned in blocks of {br}x{bc}: "
            f"its kernel of shape {tuple(shape)} is a {rows}x{cols} matrix "
            "(fan-in x outputs) and both dimensions must be divisible by "
            "the block. Exclude the layer with `ignored_layers=` or choose "
            f"another block. Received: block_size={tuple(block_size)!r}"
        )


def check_m_by_n(layer_name, shape, num_output_axes, m_by_n):
    m, n = m_by_n
    if num_output_axes != 1:
        raise ValueError(
            f"Layer {layer_name!r} is a depthwise convolution: it has one "
            "input channel per output, so the m-by-n pattern (along input "
            "channels) does not apply. Exclude it with `ignored_layers=` or "
            f"drop the pattern. Received: sparsity_m_by_n={tuple(m_by_n)!r}"
        )
    in_channels = int(shape[-2])
    if in_channels % n:
        raise ValueError(
            f"Layer {layer_name!r} has {in_channels} input channels (kernel "
            f"shape {tuple(shape)}), not divisible by n={n}: the m-by-n "
            "pattern groups n consecutive input channels. Exclude the layer "
            "with `ignored_layers=` or choose another n. Received: "
            f"sparsity_m_by_n={tuple(m_by_n)!r}"
        )


class Pattern:
    """How scores are grouped into pruning units for one kernel."""

    def __init__(self, block_size=None, m_by_n=None):
        self.block_size = tuple(block_size) if block_size else None
        self.m_by_n = tuple(m_by_n) if m_by_n else None

    @property
    def is_block(self):
        return self.block_size is not None and self.block_size != (1, 1)

    def unit_scores(self, scores, num_output_axes):
        """1-D unit scores and the function expanding unit keeps to a mask."""
        shape = scores.shape
        if not self.is_block:
            return scores.reshape(-1), lambda keep: keep.reshape(shape)
        rows, cols = kernel_matrix_shape(shape, num_output_axes)
        br, bc = self.block_size
        tiles = scores.reshape(rows // br, br, cols // bc, bc)
        with np.errstate(invalid="ignore"):
            unit = tiles.mean(axis=(1, 3))
        unit = np.where(np.isnan(unit), -np.inf, unit)

        def expand(keep):
            keep = keep.reshape(rows // br, cols // bc)
            full = np.repeat(np.repeat(keep, br, axis=0), bc, axis=1)
            return full.reshape(shape)

        return unit.reshape(-1), expand


def _keep_top(unit_scores, n_prune):
    keep = np.ones(unit_scores.shape, dtype="float32")
    if n_prune > 0:
        order = np.argsort(unit_scores, kind="stable")
        keep[order[:n_prune]] = 0.0
    return keep


def m_by_n_mask(scores, m_by_n):
    """Mask pruning the `m` lowest of every `n` along the input axis."""
    m, n = m_by_n
    moved = np.moveaxis(scores, -2, -1)
    groups = moved.reshape(-1, n)
    order = np.argsort(groups, axis=1, kind="stable")
    keep = np.ones(groups.shape, dtype="float32")
    np.put_along_axis(keep, order[:, :m], 0.0, axis=1)
    return np.moveaxis(keep.reshape(moved.shape), -1, -2)


def local_mask(scores, sparsity, pattern, num_output_axes):
    """Mask of one kernel keeping its highest-scoring units."""
    scores = np.asarray(scores, dtype="float64")
    if pattern.m_by_n is not None:
        return m_by_n_mask(scores, pattern.m_by_n)
    units, expand = pattern.unit_scores(scores, num_output_axes)
    keep = _keep_top(units, num_pruned(units.size, sparsity))
    return expand(keep).astype("float32")


def global_masks(scores, sparsity, pattern, num_output_axes):
    """Masks of several kernels from one global ranking of their units.

    Args:
        scores: dict layer -> score array.
        sparsity: the fraction of all units to prune.
        pattern: a `Pattern` (block or element; m-by-n is local by nature).
        num_output_axes: dict layer -> int.

    Returns:
        dict layer -> float32 0/1 mask.
    """
    names = list(scores)
    units, expanders, sizes = [], [], []
    for name in names:
        unit, expand = pattern.unit_scores(
            np.asarray(scores[name], dtype="float64"), num_output_axes[name]
        )
        units.append(unit)
        expanders.append(expand)
        sizes.append(unit.size)
    if pattern.m_by_n is not None:
        return {
            name: m_by_n_mask(np.asarray(scores[name]), pattern.m_by_n)
            for name in names
        }
    flat = np.concatenate(units) if units else np.zeros((0,))
    keep = _keep_top(flat, num_pruned(flat.size, sparsity))
    masks, offset = {}, 0
    for name, expand, size in zip(names, expanders, sizes):
        masks[name] = expand(keep[offset : offset + size]).astype("float32")
        offset += size
    return masks
