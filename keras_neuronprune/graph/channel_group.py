"""Data classes of coupled channels: `GroupMember` and `ChannelGroup`."""

import dataclasses

import numpy as np

PRODUCER = "producer"
CONSUMER = "consumer"
CHANNELWISE = "channelwise"


@dataclasses.dataclass(eq=False)
class GroupMember:
    """One place where the channels of a group appear.

    Attributes:
        layer: layer name; inside a nested model, `"outer/inner"`.
        role: `"output"` (the channels are in the layer's output) or
            `"input"` (in its input number `input_index`).
        kind: `"producer"` (creates the channels by mixing its inputs:
            Conv, Dense...), `"consumer"` (mixes these channels into
            others) or `"channelwise"` (BN, depthwise, pooling, merges...).
        input_index: index of the input tensor for role `"input"`, else 0.
        channels: int array `(size, r)`: the position(s) on the layer's
            channel axis of each group channel (r > 1 where a channel is
            repeated, e.g. a depthwise multiplier or a Flatten).
    """

    layer: str
    role: str
    kind: str
    input_index: int
    channels: np.ndarray

    def __repr__(self):
        r = self.channels.shape[1] if self.channels.ndim == 2 else 1
        return (
            f"GroupMember({self.layer!r}, role={self.role!r}, "
            f"kind={self.kind!r}, input_index={self.input_index}, "
            f"channels={self.channels.shape[0]}x{r})"
        )


@dataclasses.dataclass(eq=False)
class ChannelGroup:
    """A set of channels that must be pruned together.

    Channel `k` of the group is one channel of every member at once: keeping
    or removing it keeps or removes it everywhere (producers' filters, BN
    parameters, consumers' input weights, residual additions, the matching
    slice of a concatenation).

    Attributes:
        name: unique name (the first layer that outputs the channels).
        size: number of channels.
        prunable: whether channels may be removed.
        exact: False when a member normalises across channels
            (LayerNormalization, GroupNormalization, Softmax over
            channels): removing a channel then changes the others' values.
        reason: why the group is not prunable (or inexact), else None.
        members: list of `GroupMember`.
        partitions: list of `(layer_name, chunk_ids)`: a grouped
            convolution (or GroupNormalization) needs the same number of
            kept channels in every chunk.
    """

    name: str
    size: int
    prunable: bool
    exact: bool
    reason: str | None
    members: list
    partitions: list = dataclasses.field(default_factory=list)

    @property
    def layers(self):
        return sorted({m.layer for m in self.members})

    @property
    def producers(self):
        return [m for m in self.members if m.kind == PRODUCER]

    @property
    def consumers(self):
        return [m for m in self.members if m.kind == CONSUMER]

    def check_keep(self, keep):
        """Validates a keep array for this group and returns it as int64.

        Raises:
            ValueError: naming the group and the problem.
        """
        arr = np.asarray(keep)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise ValueError(
                f"keep['{self.name}'] must be a 1-D sequence of integer "
                f"channel indices. Received: {keep!r}"
            )
        arr = arr.astype("int64")
        if arr.size == 0:
            raise ValueError(
                f"keep['{self.name}'] is empty: it would remove all "
                f"{self.size} channels of the group. Keep at least one."
            )
        if arr.min() < 0 or arr.max() >= self.size:
            raise ValueError(
                f"keep['{self.name}'] holds out-of-range indices (the group "
                f"has {self.size} channels, valid indices are 0.."
                f"{self.size - 1}). Received: min={arr.min()}, "
                f"max={arr.max()}"
            )
        if np.any(np.diff(arr) <= 0):
            dup = arr.size != np.unique(arr).size
            raise ValueError(
                f"keep['{self.name}'] must be sorted and without "
                f"{'duplicates' if dup else 'disorder'}. Received: "
                f"{arr.tolist()}"
            )
        for layer, chunks in self.partitions:
            counts = np.bincount(chunks[arr], minlength=chunks.max() + 1)
            if np.any(counts != counts[0]):
                raise ValueError(
                    f"keep['{self.name}'] leaves the conv groups of layer "
                    f"'{layer}' unequal ({counts.tolist()} channels per "
                    "group); a grouped layer needs the same number of "
                    "kept channels in every group."
                )
        return arr

    def __repr__(self):
        status = "prunable" if self.prunable else f"blocked: {self.reason}"
        exact = "" if self.exact else ", inexact"
        return (
            f"ChannelGroup({self.name!r}, size={self.size}, {status}{exact}, "
            f"{len(self.members)} members)"
        )
