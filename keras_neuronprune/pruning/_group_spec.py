"""JSON round trip of channel groups and of where their masks live.

The controller stores, in its config, the prunable groups computed on the
user's original model (so a reloaded model prunes exactly the same
channels, without re-analysing the masked graph) and the *mask targets* of
every group: `(layer path, "output" | "input", positions (size, r))`, the
mask entries to zero when a group channel is removed.
"""

import numpy as np

from keras_neuronprune.graph.channel_group import ChannelGroup
from keras_neuronprune.graph.channel_group import GroupMember


def group_to_config(group):
    return {
        "name": group.name,
        "size": int(group.size),
        "exact": bool(group.exact),
        "members": [
            [
                m.layer,
                m.role,
                m.kind,
                int(m.input_index),
                np.asarray(m.channels).astype(int).tolist(),
            ]
            for m in group.members
        ],
        "partitions": [
            [layer, np.asarray(chunks).astype(int).tolist()]
            for layer, chunks in group.partitions
        ],
    }


def group_from_config(config):
    members = [
        GroupMember(
            layer,
            role,
            kind,
            index,
            np.asarray(channels, "int64").reshape(len(channels), -1),
        )
        for layer, role, kind, index, channels in config["members"]
    ]
    return ChannelGroup(
        name=config["name"],
        size=int(config["size"]),
        prunable=True,
        exact=bool(config["exact"]),
        reason=None,
        members=members,
        partitions=[
            (layer, np.asarray(chunks, "int64"))
            for layer, chunks in config["partitions"]
        ],
    )


def targets_to_config(targets):
    """`targets`: dict group -> list of (path, kind, positions)."""
    return {
        name: [
            [path, kind, np.asarray(pos).astype(int).tolist()]
            for path, kind, pos in items
        ]
        for name, items in targets.items()
    }


def targets_from_config(config):
    return {
        name: [
            (path, kind, np.asarray(pos, "int64").reshape(len(pos), -1))
            for path, kind, pos in items
        ]
        for name, items in config.items()
    }
