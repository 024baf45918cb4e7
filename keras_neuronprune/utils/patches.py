"""Per-input-channel contributions of Conv / Dense layers at sampled outputs.

ThiNet and the K-FAC statistics of the Hessian-spectral criterion need, for
a channel-mixing layer, the input patch behind an output location. These
helpers compute them in NumPy for Conv1D/2D/3D (channels last, any stride,
dilation, "valid"/"same"/"causal" padding, `groups=1`) and Dense layers.
"""

import keras
import numpy as np

_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_TRANSPOSED = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


def supports(layer):
    """Whether `patch_contributions` understands this consumer layer."""
    if isinstance(layer, _TRANSPOSED):
        return False
    if isinstance(layer, _CONV):
        return (
            getattr(layer, "groups", 1) == 1
            and layer.data_format == "channels_last"
        )
    return isinstance(layer, keras.layers.Dense)


def _conv_geometry(layer, spatial):
    kernel = tuple(layer.kernel_size)
    strides = tuple(layer.strides)
    dilation = tuple(layer.dilation_rate)
    padding = layer.padding
    pads, out = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilation):
        span = (k - 1) * d + 1
        if padding == "valid":
            o = (size - span) // s + 1
            before = 0
        elif padding == "same":
            o = -(-size // s)
            total = max((o - 1) * s + span - size, 0)
            before = total // 2
        elif padding == "causal":
            o = -(-size // s) if s > 1 else size
            before = span - 1
        else:
            raise ValueError(
                f"Unsupported padding {padding!r} of layer {layer.name!r}."
            )
        pads.append(before)
        out.append(o)
    return kernel, strides, dilation, pads, out


def sample_locations(layer, input_shape, per_image, rng):
    """Random output locations of `layer` for a batch.

    Args:
        layer: a supported Conv or Dense layer.
        input_shape: shape of the batch fed to the layer `(N, ..., C)`.
        per_image: locations drawn per image (all of them if larger than
            the output map, or for Dense layers).
        rng: a `np.random.Generator`.

    Returns:
        Int array `(S, 1 + spatial_rank)`: image index and output
        coordinates (for Dense, the index over the flattened leading axes).
    """
    n = input_shape[0]
    if isinstance(layer, keras.layers.Dense):
        rows = int(np.prod(input_shape[1:-1], dtype="int64"))
        out = [rows]
    else:
        out = _conv_geometry(layer, input_shape[1:-1])[4]
    cells = int(np.prod(out))
    coords = []
    for image in range(n):
        if per_image is None or per_image >= cells:
            flat = np.arange(cells)
        else:
            flat = rng.choice(cells, size=per_image, replace=False)
        unravel = np.stack(np.unravel_index(flat, out), axis=1)
        coords.append(
            np.concatenate([np.full((len(flat), 1), image), unravel], axis=1)
        )
    return np.concatenate(coords).astype("int64")


def input_patches(layer, x, locations):
    """Input patches behind the given output locations.

    Args:
        layer: a supported Conv or Dense layer.
        x: the layer's input batch, `(N, ..., C)`.
        locations: int array from `sample_locations`.

    Returns:
        Conv: array `(S, *kernel_size, C)` (zero where the patch hangs over
        the padding). Dense: array `(S, C)`.
    """
    x = np.asarray(x)
    if isinstance(layer, keras.layers.Dense):
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        return flat[locations[:, 0], locations[:, 1]]
    kernel, strides, dilation, pads, _ = _conv_geometry(layer, x.shape[1:-1])
    pad_width = [(0, 0)]
    for p, k, d in zip(pads, kernel, dilation):
        pad_width.append((p, (k - 1) * d + 1))
    pad_width.append((0, 0))
    padded = np.pad(x, pad_width)
    index = [locations[:, 0].reshape((-1,) + (1,) * len(kernel))]
    for axis, (k, s, d) in enumerate(zip(kernel, strides, dilation)):
        base = locations[:, 1 + axis] * s
        offsets = np.arange(k) * d
        shape = [1] * len(kernel)
        shape[axis] = k
        index.append(
            base.reshape((-1,) + (1,) * len(kernel))
            + offsets.reshape([1] + shape)
        )
    return padded[tuple(index)]


def patch_contributions(layer, x, locations):
    """Contribution of every input channel to every output at the locations.

    `out[s, c, o]` is the part of output channel `o` at location `s` coming
    from input channel `c` (kernel times input, bias excluded), so the
    layer's pre-bias output is `out.sum(axis=1)`.

    Returns:
        Float64 array `(S, C_in, C_out)`.
    """
    patches = np.asarray(input_patches(layer, x, locations), "float64")
    kernel = np.asarray(layer.kernel.numpy(), "float64")
    if isinstance(layer, keras.layers.Dense):
        return patches[:, :, None] * kernel[None]
    # Batched matmul over input channels (BLAS) instead of an einsum loop:
    # (C, S, window) @ (C, window, O) -> (C, S, O).
    c_in, c_out = kernel.shape[-2], kernel.shape[-1]
    p = patches.reshape(len(patches), -1, c_in).transpose(2, 0, 1)
    k = kernel.reshape(-1, c_in, c_out).transpose(1, 0, 2)
    return np.matmul(p, k).transpose(1, 0, 2)
