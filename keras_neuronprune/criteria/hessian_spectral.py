"""Neuron pruning guided by the Hessian spectral radius, with K-FAC factors."""

import keras
import numpy as np

from keras_neuronprune.core.surgery import layer_by_name
from keras_neuronprune.criteria._calibrated import CalibratedCriterion
from keras_neuronprune.criteria._moved import moved_driver
from keras_neuronprune.criteria.base_criterion import check_finite_scores
from keras_neuronprune.criteria.base_criterion import progress
from keras_neuronprune.utils.features import call_site_map
from keras_neuronprune.utils.features import feature_model
from keras_neuronprune.utils.gradients import activations_and_gradients
from keras_neuronprune.utils.patches import input_patches
from keras_neuronprune.utils.patches import sample_locations
from keras_neuronprune.utils.patches import supports


class KroneckerFactors:
    """K-FAC factors of one Conv/Dense layer: `H ~ T * (A kron G)`.

    Attributes:
        layer: layer name.
        a: input factor `E[abar abar^T]`, `abar` the input patch flattened
            as `(*kernel_size, C_in)` with a trailing 1 for the bias.
        g: output factor `E[g g^T]`, `g` the per-sample loss gradient
            w.r.t. the layer's output at one location.
        locations: number of output locations `T` per sample (1 for
            Dense on vectors).
        patch_shape: `(*kernel_size, C_in)` (Dense: `(C_in,)`).
    """

    def __init__(self, layer, a, g, locations, patch_shape):
        self.layer = layer
        self.a = a
        self.g = g
        self.locations = locations
        self.patch_shape = tuple(patch_shape)

    @property
    def spectral_radius(self):
        """`rho(T A kron G) = T rho(A) rho(G)` (both factors are PSD)."""
        return self.locations * self.top("a")[0] * self.top("g")[0]

    def top(self, which):
        """Cached `(largest eigenvalue, its eigenvector)` of `a` or `g`."""
        cache = self.__dict__.setdefault("_top", {})
        if which not in cache:
            cache[which] = top_eigen(getattr(self, which))
        return cache[which]

    def input_indices(self, channels):
        """Rows of `a` that belong to the given input channels."""
        index = np.arange(int(np.prod(self.patch_shape))).reshape(
            self.patch_shape
        )
        return np.ravel(index[..., np.asarray(channels)])


def top_eigen(matrix):
    """`(largest eigenvalue, eigenvector)` of a symmetric PSD matrix."""
    m = np.asarray(matrix, "float64")
    if m.size == 0:
        return 0.0, np.zeros(0)
    if not np.all(np.isfinite(m)):
        # Reported by `check_finite_scores` with the group's name.
        return float("nan"), np.zeros(m.shape[0])
    # keras.ops (Eigen on TensorFlow): NumPy's threaded OpenBLAS eigh is
    # many times slower on a loaded machine.
    values, vectors = keras.ops.eigh(m)
    values = keras.ops.convert_to_numpy(values)
    vectors = keras.ops.convert_to_numpy(vectors)
    return float(max(values[-1], 0.0)), np.asarray(vectors[:, -1], "float64")


def spectral_radius(matrix):
    """Largest eigenvalue of a symmetric PSD matrix (0 for an empty one)."""
    return top_eigen(matrix)[0]


_EXACT_LIMIT = 96


def deleted_spectral_radii(
    matrix, deletions, top=None, tol=1e-10, max_iter=500
):
    """Largest eigenvalue of `matrix` with each set of rows/columns removed.

    Small matrices (up to 96 wide) use exact symmetric eigenvalues, in one
    batched call. Larger ones (the input factors of convolutions,
    `k*k*C + 1` wide) use one batched power iteration for all deletions,
    started from the full matrix's top eigenvector with the deleted entries
    zeroed (removing a channel barely moves it), stopped when every
    Rayleigh quotient changes by less than `tol` (relative).

    Args:
        matrix: symmetric PSD array `(P, P)`.
        deletions: list of index arrays.
        top: optional `(value, vector)` from `top_eigen(matrix)`.
        tol, max_iter: power-iteration stopping rule.

    Returns:
        Float64 array `(len(deletions),)`.
    """
    m = np.asarray(matrix, "float64")
    p = m.shape[0]
    deletions = [np.asarray(d, "int64").reshape(-1) for d in deletions]
    if not np.all(np.isfinite(m)):
        return np.full(len(deletions), np.nan)
    if p <= _EXACT_LIMIT:
        sizes = {len(np.unique(d)) for d in deletions}
        if len(sizes) == 1 and sizes != {p}:
            keeps = np.stack([np.setdiff1d(np.arange(p), d) for d in deletions])
            sub = m[keeps[:, :, None], keeps[:, None, :]]
            return np.maximum(np.linalg.eigvalsh(sub)[:, -1], 0.0)
        return np.array([spectral_radius(_without(m, d)) for d in deletions])
    mask = np.ones((len(deletions), p))
    for i, d in enumerate(deletions):
        mask[i, d] = 0.0
    vector = (top or top_eigen(m))[1]
    x = mask * vector[None, :]
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
    rho = np.zeros(len(deletions))
    for _ in range(max_iter):
        y = (x @ m) * mask
        new = np.einsum("ip,ip->i", x, y)
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        x = y / np.maximum(norms, 1e-300)
        scale = np.maximum(np.abs(new), 1e-300)
        done = np.all(np.abs(new - rho) <= tol * scale)
        rho = new
        if done:
            break
    return np.maximum(rho, 0.0)


def _without(matrix, rows):
    keep = np.setdiff1d(np.arange(matrix.shape[0]), rows)
    return matrix[np.ix_(keep, keep)]


def kronecker_factors(
    model, layer_names, batches, loss, per_image=8, seed=0, verbose=0
):
    """Collects K-FAC factors of Conv/Dense layers on calibration data.

    Uses the empirical Fisher (gradients of the loss at the true targets),
    the KFC approximation for convolutions (spatial positions independent)
    and `per_image` random output locations per sample. `verbose=1` shows
    a progress bar over the batches.

    Returns:
        dict layer name -> `KroneckerFactors`.
    """
    rng = np.random.default_rng(seed)
    _, sites = call_site_map(model)
    layers = [layer_by_name(model, n) for n in layer_names]
    for layer in layers:
        if not supports(layer):
            raise ValueError(
                f"Hessian-spectral pruning supports Dense and Conv layers "
                f"(groups=1); layer {layer.name!r} is a "
                f"{type(layer).__name__}."
            )
    inputs = [sites[n][0].inputs[0] for n in layer_names]
    sub = feature_model(model, inputs)
    sums_a = [0.0] * len(layers)
    sums_g = [0.0] * len(layers)
    counts = [0] * len(layers)
    cells = [1] * len(layers)
    for x, y in progress(batches, verbose, "batch"):
        acts = sub.predict_on_batch(x)
        acts = acts if isinstance(acts, list) else [acts]
        _, grads = activations_and_gradients(model, layer_names, x, y, loss)
        n = len(y)
        for i, layer in enumerate(layers):
            a_in = np.asarray(acts[i], "float64")
            g_out = np.asarray(grads[layer.name], "float64") * n
            locations = sample_locations(layer, a_in.shape, per_image, rng)
            patches = input_patches(layer, a_in, locations)
            patches = patches.reshape(len(locations), -1)
            if layer.use_bias:
                patches = np.concatenate(
                    [patches, np.ones((len(patches), 1))], axis=1
                )
            flat_g = g_out.reshape(n, -1, g_out.shape[-1])
            cells[i] = flat_g.shape[1]
            index = np.ravel_multi_index(
                tuple(locations[:, 1:].T), g_out.shape[1:-1] or (1,)
            )
            g = flat_g[locations[:, 0], index]
            sums_a[i] = sums_a[i] + patches.T @ patches
            sums_g[i] = sums_g[i] + g.T @ g
            counts[i] += len(locations)
    result = {}
    for i, layer in enumerate(layers):
        kernel_shape = tuple(layer.kernel.shape)
        result[layer.name] = KroneckerFactors(
            layer.name,
            sums_a[i] / counts[i],
            sums_g[i] / counts[i],
            cells[i],
            kernel_shape[:-1],
        )
    return result


def _filters(layer):
    """Matrix `(patch_size [+1], C_out)` of the layer's filters (+ bias)."""
    kernel = np.asarray(layer.kernel.numpy(), "float64")
    w = kernel.reshape(-1, kernel.shape[-1])
    if layer.use_bias:
        w = np.concatenate([w, np.asarray(layer.bias.numpy())[None]], axis=0)
    return w


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class HessianSpectral(CalibratedCriterion):
    """Neuron importance from K-FAC curvature, biased towards flat minima.

    For a group channel `j` produced by layers `l` (filters `w_j`, K-FAC
    factors `A_l`, `G_l` over `T_l` locations, see `kronecker_factors`):

    * saliency (Kronecker-factored OBD): `S_j = sum_l 1/2 T_l G_l[j, j]
      w_j^T A_l w_j`, the predicted loss increase when `w_j` is removed;
    * flatness gain: with `rho = sum_l rho(T_l A_l kron G_l)` over the
      producers and the consumers of the group (`rho(A kron G) =
      rho(A) rho(G)`), `D_j = (rho - rho_without_j) / rho` in [0, 1], where
      removing `j` deletes row/column `j` of each producer's `G` and the
      rows of channel `j`'s patch entries from each consumer's `A`;
    * score `S_j * (1 - flatness_weight * D_j)`: among channels of similar
      saliency, those carrying the sharpest curvature direction go first,
      which moves the pruned network towards a flatter solution.

    Documented choices (the paper's objective is not public): empirical
    Fisher K-FAC factors, KFC spatial independence, this multiplicative
    combination, and spectral radii by exact symmetric eigenvalues. The
    training-and-pruning procedure is `hessian_spectral_prune`. Scores are
    in loss units: rank them globally.

    Args:
        flatness_weight: weight of the flatness gain, in [0, 1].
        samples_per_image: output locations sampled per image.
        min_samples: fewest calibration samples.
        max_samples: use at most this many samples.

    Example:
        >>> scores = HessianSpectral().score(ScoringContext(
        ...     model, groups, data, loss="sparse_categorical_crossentropy"))

    Reference:
        Ebrahimi & Klabjan, "Neuron-based Pruning of Deep Neural Networks
        with Better Generalization using Kronecker Factored Curvature
        Approximation", 2021, https://arxiv.org/abs/2111.08577
    """

    needs_loss = True
    loss_use = "a loss"
    config_keys = (
        "flatness_weight",
        "samples_per_image",
        "min_samples",
        "max_samples",
    )

    def __init__(
        self,
        reduction="sum",
        flatness_weight=0.5,
        samples_per_image=8,
        min_samples=32,
        max_samples=None,
    ):
        super().__init__(reduction, min_samples, max_samples)
        if not 0 <= flatness_weight <= 1:
            raise ValueError(
                "`flatness_weight` must be in [0, 1]. Received: "
                f"flatness_weight={flatness_weight}"
            )
        self.flatness_weight = float(flatness_weight)
        self.samples_per_image = int(samples_per_image)
        self.last_details = None

    def score_batches(self, context, batches, groups):
        model = context.model
        names = []
        for group in groups:
            for m in group.members:
                if m.kind in ("producer", "consumer") and m.layer not in names:
                    if "/" not in m.layer and supports(
                        layer_by_name(model, m.layer)
                    ):
                        names.append(m.layer)
        if not names:
            return self.fill_unsupported({}, groups, [g.name for g in groups])
        factors = kronecker_factors(
            model,
            names,
            batches,
            context.loss,
            self.samples_per_image,
            verbose=getattr(context, "verbose", 0),
        )
        scores, details, unsupported = {}, {}, []
        for group in groups:
            terms = self._group_terms(model, group, factors)
            if terms is None:
                unsupported.append(group.name)
                continue
            saliency, parts = terms
            value = saliency * (1.0 - self.flatness_weight * parts)
            details[group.name] = {"saliency": saliency, "flatness": parts}
            scores[group.name] = check_finite_scores(value, group.name)
        self.last_details = details
        return self.fill_unsupported(scores, groups, unsupported)

    def _group_terms(self, model, group, factors):
        saliency = np.zeros(group.size)
        radius = 0.0
        reduced = np.zeros(group.size)
        found = False
        for m in group.members:
            if m.layer not in factors:
                continue
            f = factors[m.layer]
            positions = np.asarray(m.channels).reshape(group.size, -1)
            if m.kind == "producer" and m.role == "output":
                found = True
                w = _filters(layer_by_name(model, m.layer))
                rho_a = f.top("a")[0]
                radius += f.locations * rho_a * f.top("g")[0]
                # w_p^T A w_p for every output column p at once.
                quad = np.einsum("ip,ij,jp->p", w, f.a, w)
                per_out = 0.5 * f.locations * np.diag(f.g) * quad
                saliency += per_out[positions].sum(axis=1)
                reduced += (
                    f.locations
                    * rho_a
                    * deleted_spectral_radii(f.g, list(positions), f.top("g"))
                )
            elif m.kind == "consumer" and m.role == "input":
                rho_g = f.top("g")[0]
                radius += f.locations * f.top("a")[0] * rho_g
                rows = [f.input_indices(pos) for pos in positions]
                reduced += (
                    f.locations
                    * rho_g
                    * deleted_spectral_radii(f.a, rows, f.top("a"))
                )
        if not found:
            return None
        flatness = (
            np.clip((radius - reduced) / radius, 0.0, 1.0)
            if radius > 0
            else np.zeros(group.size)
        )
        return saliency, flatness


def __getattr__(name):
    # Deprecated: the driver moved up to `keras_neuronprune.pruning`.
    return moved_driver(
        __name__,
        name,
        "hessian_spectral_prune",
        "keras_neuronprune.pruning.hessian_spectral",
    )
