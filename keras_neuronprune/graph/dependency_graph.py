"""The channel dependency graph of a functional or Sequential Keras model.

How it works: every tensor's channel axis (the last axis; channels_last) is
given an array of channel ids. A layer that creates channels by mixing its
inputs (Conv, Dense) allocates new ids; a layer that acts per channel passes
its input's ids through; a concatenation concatenates them; a depthwise
multiplier repeats them; a Flatten tiles them. A residual `Add`, a shared
layer or a nested model *couples* ids (they must be pruned together). The
connected components of the couplings are the channels; channels that occur
in exactly the same set of tensors form a `ChannelGroup`, ordered by their
first occurrence. The keep mask of any tensor is then a lookup, which is
what the rewriter uses to slice every weight.
"""

import numpy as np

from keras_neuronprune.graph import _keras_graph as kg
from keras_neuronprune.graph.channel_group import ChannelGroup
from keras_neuronprune.graph.channel_group import GroupMember
from keras_neuronprune.graph.handlers import get_handler


def channel_count(tensor):
    shape = getattr(tensor, "shape", None)
    if shape is None or len(shape) < 2 or shape[-1] is None:
        return None
    return int(shape[-1])


class _Site:
    __slots__ = ("layer", "path", "inputs", "outputs", "args", "kwargs")

    def __init__(self, call_site, path):
        self.layer = call_site.operation
        self.path = path
        self.inputs = call_site.inputs
        self.outputs = call_site.outputs
        self.args = call_site.args
        self.kwargs = call_site.kwargs


class LayerInfo:
    """What the rewriter needs to know about one layer (first call site)."""

    __slots__ = (
        "layer", "path", "handler", "barrier", "in_ids", "out_ids",
        "in_shapes", "out_shapes",
    )  # fmt: skip

    def __init__(self, layer, path, handler, barrier, in_ids, out_ids, site):
        self.layer = layer
        self.path = path
        self.handler = handler
        self.barrier = barrier
        self.in_ids = in_ids
        self.out_ids = out_ids
        self.in_shapes = [tuple(t.shape) for t in site.inputs]
        self.out_shapes = [tuple(t.shape) for t in site.outputs]


class DependencyGraph:
    """Channel groups of `model`, and the per-tensor channel mapping.

    Args:
        model: a functional or Sequential Keras model (nested models and
            shared layers allowed).
        allow_inexact: whether groups normalised across channels may be
            pruned.
    """

    def __init__(self, model, allow_inexact=False):
        self.model = model
        self.allow_inexact = allow_inexact
        self._next = 0
        self._tensor_ids = {}
        self._keepalive = []
        self._records = []
        self._cache = {}
        self._edges = []
        self._blocks = []
        self._inexact = []
        self._members = []
        self._partitions = []
        self._first = {}
        self._nested_seen = set()
        self.layers = {}
        functional = kg.as_functional(model)
        # The graph analysed: custom layers are inlined in it, so the
        # rewriter must rebuild this graph rather than `model`.
        self.functional = functional
        for tensor in functional.inputs:
            n = channel_count(tensor)
            if n is not None:
                ids = self._alloc(n)
                self.set_channels(tensor, ids, functional.name)
                self.block(ids, f"it is a model input ('{tensor.name}')")
        self._walk(functional, "")
        for tensor in functional.outputs:
            ids = self.channels(tensor)
            if ids is not None:
                op, _, _ = kg.tensor_producer(tensor)
                self.block(ids, f"it is a model output (of layer '{op.name}')")
        self._finalize()

    # ------------------------------------------------------------------
    # API used by handlers.
    def channels(self, tensor):
        """Channel ids of a tensor (None: no channel axis)."""
        return self._tensor_ids.get(id(tensor))

    def set_channels(self, tensor, ids, path):
        if ids is None:
            return
        self._tensor_ids[id(tensor)] = ids
        self._keepalive.append(tensor)
        self._records.append((ids, path))

    def new_channels(self, site, n, key=0):
        """Allocates `n` channels for output `key` of a layer (cached per
        layer, so every call of a shared layer makes the same channels)."""
        cache_key = (id(site.layer), key)
        ids = self._cache.get(cache_key)
        if ids is None or len(ids) != n:
            ids = self._alloc(n)
            self._cache[cache_key] = ids
        return ids

    def couple(self, a, b):
        if a is None or b is None or a is b:
            return
        if len(a) != len(b):
            raise ValueError(
                f"internal error: coupling {len(a)} with {len(b)} channels"
            )
        self._edges.append((a, b))

    def block(self, ids, reason):
        if ids is not None:
            self._blocks.append((ids, reason))

    def inexact(self, ids, reason):
        if ids is not None:
            self._inexact.append((ids, reason))

    def add_member(self, site, role, kind, index, ids):
        if ids is not None:
            self._members.append((site.path, role, kind, index, ids))

    def partition(self, site, ids, chunks):
        if ids is not None:
            self._partitions.append((site.path, ids, np.asarray(chunks)))

    def barrier(self, site, reason):
        """Blocks every channel flowing into or out of a call site."""
        for index, tensor in enumerate(site.inputs):
            ids = self.channels(tensor)
            self.block(ids, reason)
            self.add_member(site, "input", "channelwise", index, ids)
        for key, tensor in enumerate(site.outputs):
            n = channel_count(tensor)
            if n is None:
                continue
            ids = self.new_channels(site, n, key)
            self.block(ids, reason)
            self.set_channels(tensor, ids, site.path)
            self.add_member(site, "output", "channelwise", 0, ids)

    # ------------------------------------------------------------------
    def _alloc(self, n):
        ids = np.arange(self._next, self._next + n, dtype=np.int64)
        self._next += n
        return ids

    def _walk(self, functional, prefix):
        for call_site in kg.call_sites(functional):
            op = call_site.operation
            site = _Site(call_site, prefix + op.name)
            if isinstance(op, kg.keras.Model):
                self._nested(op, site)
                continue
            handler = get_handler(op)
            barrier = None
            if handler is None:
                failure = kg.trace_failure(op)
                barrier = (
                    f"blocked by layer '{site.path}': {failure}"
                    if failure
                    else (
                        f"blocked by layer '{site.path}' "
                        f"({type(op).__name__}), which keras_neuronprune "
                        "does not know; describe it with "
                        "keras_neuronprune.register_layer_handler"
                    )
                )
            elif not handler.known(op):
                names = sorted(w.name for w in op.weights)
                barrier = (
                    f"blocked by layer '{site.path}' ({type(op).__name__}): "
                    f"its weights {names} are not the ones its handler "
                    "knows how to slice"
                )
            else:
                barrier = handler.propagate(op, site, self)
            if barrier:
                self.barrier(site, barrier)
            in_ids = [self.channels(t) for t in site.inputs]
            out_ids = [self.channels(t) for t in site.outputs]
            first = self._first.get(id(op))
            if first is None:
                self._first[id(op)] = (in_ids, out_ids)
                self.layers[id(op)] = LayerInfo(
                    op, site.path, handler, barrier, in_ids, out_ids, site
                )
            else:
                self._couple_lists(first[0], in_ids)
                self._couple_lists(first[1], out_ids)
                if barrier and not self.layers[id(op)].barrier:
                    self.layers[id(op)].barrier = barrier

    def _couple_lists(self, first, other):
        for a, b in zip(first, other):
            if a is not None and b is not None and len(a) == len(b):
                self.couple(a, b)

    def _nested(self, model, site):
        try:
            inner = kg.as_functional(model)
        except ValueError:
            reason = (
                f"blocked by nested model '{site.path}' "
                f"({type(model).__name__}), which has no functional graph"
            )
            self.barrier(site, reason)
            self.layers.setdefault(
                id(model),
                LayerInfo(model, site.path, None, reason, [], [], site),
            )
            return
        outer_in = [self.channels(t) for t in site.inputs]
        if id(model) not in self._nested_seen:
            self._nested_seen.add(id(model))
            for tensor, ids in zip(inner.inputs, outer_in):
                self.set_channels(tensor, ids, site.path)
            self._walk(inner, site.path + "/")
            self.layers[id(model)] = LayerInfo(
                model, site.path, None, None, outer_in, None, site
            )
        else:
            for tensor, ids in zip(inner.inputs, outer_in):
                self.couple(self.channels(tensor), ids)
        for outer, tensor in zip(site.outputs, inner.outputs):
            self.set_channels(outer, self.channels(tensor), site.path)

    # ------------------------------------------------------------------
    def _finalize(self):
        n = self._next
        labels = _components(n, self._edges)
        self.labels = labels
        names, sizes, group_labels, group_of, rank_of = self._number_groups(
            labels, int(labels.max()) + 1 if n else 0
        )
        self.group_of = group_of
        self.rank_of = rank_of
        self.group_labels = [np.concatenate(x) for x in group_labels]
        reasons = self._first_reasons(self._blocks, len(names))
        inexact = self._first_reasons(self._inexact, len(names))
        members = self._group_members(reasons)
        partitions = self._group_partitions(reasons)
        self.groups = []
        for g, name in enumerate(names):
            reason = reasons[g]
            exact = inexact[g] is None
            if reason is None and not exact:
                if not self.allow_inexact:
                    reason = (
                        f"inexact: {inexact[g]}; pass allow_inexact=True to "
                        "prune it anyway"
                    )
            if reason is None and sizes[g] < 2:
                reason = "it has a single channel"
            if reason is None and not any(
                m.kind == "producer" for m in members[g]
            ):
                reason = "no layer produces these channels"
            self.groups.append(
                ChannelGroup(
                    name=name,
                    size=sizes[g],
                    prunable=reason is None,
                    exact=exact,
                    reason=reason
                    if reason is not None
                    else (None if exact else f"inexact: {inexact[g]}"),
                    members=members[g],
                    partitions=partitions[g],
                )
            )

    def _number_groups(self, labels, n_labels):
        """Splits components into groups by the records that touch them.

        Two components are one group when exactly the same records touch
        them (equal XOR signatures of random record tokens). Groups are
        numbered, named and ranked in record order.

        Returns:
            `(names, sizes, group_labels, group_of, rank_of)`.
        """
        rng = np.random.default_rng(1234)
        sig = np.zeros(n_labels, dtype=np.uint64)
        record_labels = []
        for ids, _ in self._records:
            labs = labels[ids]
            uniq = np.unique(labs)
            record_labels.append((labs, uniq))
            token = rng.integers(1, 2**63, dtype=np.uint64)
            sig[uniq] ^= token
        group_of = np.full(n_labels, -1, dtype=np.int64)
        rank_of = np.zeros(n_labels, dtype=np.int64)
        sig_to_group = {}
        names, sizes, group_labels = [], [], []
        used_names = set()
        for (labs, _), (_, path) in zip(record_labels, self._records):
            uniq, first_pos = np.unique(labs, return_index=True)
            new = group_of[uniq] < 0
            if not new.any():
                continue
            new_labels = uniq[new]
            new_pos = first_pos[new]
            order = np.argsort(new_pos, kind="stable")
            new_labels, new_pos = new_labels[order], new_pos[order]
            new_sigs = sig[new_labels]
            distinct = list(dict.fromkeys(new_sigs.tolist()))
            for s in distinct:
                sel = new_sigs == s
                labs_g = new_labels[sel]
                g = sig_to_group.get(s)
                if g is None:
                    g = len(names)
                    sig_to_group[s] = g
                    pos = new_pos[sel]
                    name = path
                    if len(distinct) > 1 or name in used_names:
                        name = f"{path}[{pos.min()}:{pos.max() + 1}]"
                    while name in used_names:
                        name += "'"
                    used_names.add(name)
                    names.append(name)
                    sizes.append(0)
                    group_labels.append([])
                rank_of[labs_g] = sizes[g] + np.arange(len(labs_g))
                sizes[g] += len(labs_g)
                group_of[labs_g] = g
                group_labels[g].append(labs_g)
        return names, sizes, group_labels, group_of, rank_of

    def _first_reasons(self, entries, n_groups):
        """Per group, the first reason of `entries` (`(ids, reason)`)."""
        reasons = [None] * n_groups
        for ids, reason in entries:
            for g in np.unique(self.group_of[self.labels[ids]]):
                if reasons[g] is None:
                    reasons[g] = reason
        return reasons

    def _group_members(self, reasons):
        """Members per group; uneven repeats set the group's reason."""
        members = [[] for _ in reasons]
        for path, role, kind, index, ids in self._members:
            for g, channels in self._split(ids):
                if channels is None:
                    if reasons[g] is None:
                        reasons[g] = (
                            f"its channels repeat unevenly in layer '{path}'"
                        )
                    continue
                members[g].append(
                    GroupMember(path, role, kind, index, channels)
                )
        return members

    def _group_partitions(self, reasons):
        """Grouped-layer partitions per group; conflicts set the reason."""
        partitions = [[] for _ in reasons]
        for path, ids, chunks in self._partitions:
            parts = list(self._split(ids))
            if len(parts) > 1 or parts[0][1] is None:
                for g, _ in parts:
                    if reasons[g] is None:
                        reasons[g] = (
                            f"grouped layer '{path}' spans several channel "
                            "groups"
                        )
                continue
            g, channels = parts[0]
            if channels.shape[1] != 1:
                if reasons[g] is None:
                    reasons[g] = f"grouped layer '{path}' repeats channels"
                continue
            partitions[g].append((path, chunks[channels[:, 0]]))
        return partitions

    def _split(self, ids):
        """Yields `(group index, channels (size, r) or None)` for a tensor."""
        labs = self.labels[ids]
        gids = self.group_of[labs]
        ranks = self.rank_of[labs]
        if gids.size and (gids == gids[0]).all():
            unique = gids[:1]
        else:
            unique = np.unique(gids)
        for g in unique:
            if len(unique) > 1:
                pos = np.nonzero(gids == g)[0]
            else:
                pos = np.arange(len(ids))
            size = len(self.group_labels[g])
            ks = ranks[pos]
            counts = np.bincount(ks, minlength=size)
            if counts.min() != counts.max() or counts.min() == 0:
                yield int(g), None
                continue
            order = np.argsort(ks, kind="stable")
            yield int(g), pos[order].reshape(size, counts[0])

    # ------------------------------------------------------------------
    def kept_labels(self, keep):
        """Boolean array over channel labels from a validated keep dict."""
        n_labels = len(self.group_of)
        kept = np.ones(n_labels, dtype=bool)
        for g, indices in keep.items():
            labs = self.group_labels[g]
            mask = np.ones(len(labs), dtype=bool)
            mask[indices] = False
            kept[labs[mask]] = False
        return kept

    def tensor_keep(self, ids, kept):
        if ids is None:
            return None
        return kept[self.labels[ids]]


def _components(n, edges):
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if not edges:
        return np.arange(n, dtype=np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = np.concatenate([e[0] for e in edges])
    b = np.concatenate([e[1] for e in edges])
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)
