"""The tf.distribute strategy a training run uses: one device, every local GPU, or many workers.

``multiworker`` reads the cluster from ``TF_CONFIG`` (see ``edgecnn train --help``).
"""

from __future__ import annotations

STRATEGIES = ("auto", "mirrored", "multiworker", "none")


def make_strategy(name: str, gpus: int):
    """auto: mirrored over the GPUs when there are several, else the default (one device)."""
    from edgecnn._tf import tf

    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    if name == "mirrored" or (name == "auto" and gpus > 1):
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()
