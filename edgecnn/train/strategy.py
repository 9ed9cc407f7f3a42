"""The tf.distribute strategy a training run uses: one device, every local device, or many workers.

Batch-size contract: ``--batch-size`` is the GLOBAL batch. Keras splits each batch of the
dataset across the replicas (``num_replicas_in_sync``), so a run keeps its steps per epoch,
learning rate and loss scale whatever the number of GPUs or workers; each replica sees
batch / replicas patches. Under ``multiworker`` every worker builds the same seeded dataset and
tf.data shards it by element (``AutoShardPolicy.DATA``: the data are numpy arrays, not files),
so the workers together see each patch once per epoch. BatchNorm statistics are per replica
(not synchronised), as in single-device training with the smaller batch.

``multiworker`` reads the cluster from ``TF_CONFIG`` (docs/distributed.md):
    {"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}
Worker 0 is the chief; every worker writes its own ``--out`` folder (keep the chief's).
"""

from __future__ import annotations

import json
import os
from typing import Any

STRATEGIES = ("auto", "mirrored", "multiworker", "none")
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def make_strategy(name: str, gpus: int):
    """auto: mirrored over the GPUs when there are several, else the default (one device)."""
    from edgecnn._tf import tf

    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    if name == "mirrored" or (name == "auto" and gpus > 1):
        return tf.distribute.MirroredStrategy(devices=mirrored_devices())
    if name == "multiworker":
        tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def mirrored_devices() -> list[str]:
    """Every logical GPU; with none, every logical CPU device (one, unless configured otherwise)."""
    from edgecnn._tf import tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def tf_config(env: dict[str, str] | None = None) -> dict[str, Any]:
    """TF_CONFIG parsed and checked, or a ValueError that shows a correct one."""
    raw = (os.environ if env is None else env).get("TF_CONFIG")
    hint = f"set TF_CONFIG on every worker, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' (docs/distributed.md)"
    if not raw:
        raise ValueError(f"--strategy multiworker needs the cluster in TF_CONFIG; {hint}")
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}); {hint}") from None
    workers = (cfg.get("cluster") or {}).get("worker") if isinstance(cfg, dict) else None
    task = cfg.get("task") if isinstance(cfg, dict) else None
    if not workers or not isinstance(workers, list) or not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG needs cluster.worker (a list of host:port) and task; {hint}")
    if task.get("type") not in ("worker", "chief") or not 0 <= int(task.get("index", -1)) < len(workers):
        raise ValueError(f"TF_CONFIG task {task} is not one of the {len(workers)} workers; {hint}")
    return cfg


def check_global_batch(batch_size: int, strategy) -> int:
    """The per-replica batch; a global batch the replicas cannot share evenly is an error."""
    n = int(strategy.num_replicas_in_sync)
    if batch_size % n:
        raise ValueError(f"--batch-size {batch_size} is the global batch and must split evenly over the {n} "
                         f"replicas; use a multiple of {n} (e.g. {max(n, batch_size - batch_size % n)})")
    return batch_size // n


def shard_by_data(ds, strategy):
    """Multi-worker: shard the in-memory dataset by element (there are no files to shard by)."""
    from edgecnn._tf import tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return ds
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)
