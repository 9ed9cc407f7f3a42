"""tf.data input pipeline: uint8 patches (in RAM or a memmap) -> float32 [0, 1] batches.

The dataset is a stream of row indices; each batch gathers its rows with numpy, so only the
batch is ever read from a memory-mapped cache and the full 277k-patch set needs no extra RAM.
Augmentation is per image, vectorised over the batch with stateless ops seeded from a
``Dataset.random`` stream: the same ``seed`` gives the same batches, and each epoch differs.

Augmentation suits histology, where orientation means nothing and staining varies:
the 8 dihedral transforms (flips + transposition = all 90-degree rotations and mirrors),
mild colour jitter (brightness, contrast, saturation, hue), clipped to [0, 1], and optionally
H&E stain jitter in HED space (Tellez et al. 2018): each image's haematoxylin, eosin and DAB
densities are scaled by U(1-s, 1+s) and shifted by U(-s, s), the stain variation between
labs and scanners that RGB jitter only imitates.
"""

from __future__ import annotations

import numpy as np

from edgecnn._tf import tf
from edgecnn.data.colour import BRIGHTNESS, CONTRAST, HED_FROM_RGB, HUE, OD_FLOOR, RGB_FROM_HED, SATURATION
from edgecnn.preprocess import OFFSET, SCALE


def _gather_fn(images: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, targets: np.ndarray | None):
    def gather(idx: np.ndarray):
        # Sorted reads are sequential on a memmap; the batch order is then restored.
        order = np.argsort(idx, kind="stable")
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        x = np.asarray(images[idx[order]])[inv]
        out = [x, labels[idx].astype(np.int32) if targets is None else targets[idx]]
        if weights is not None:
            out.append(weights[idx].astype(np.float32))
        return tuple(out)

    return gather


def stain_jitter(x: "tf.Tensor", seed: "tf.Tensor", sigma: float) -> "tf.Tensor":
    """HED-space stain augmentation of float32 [0, 1] NHWC images, one draw per image and stain."""
    b = tf.shape(x)[0]
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2))
    alpha = tf.random.stateless_uniform([b, 1, 1, 3], s1, minval=1 - sigma, maxval=1 + sigma)
    beta = tf.random.stateless_uniform([b, 1, 1, 3], s2, minval=-sigma, maxval=sigma)
    od = -tf.math.log(tf.maximum(x, OD_FLOOR))
    hed = tf.tensordot(od, tf.constant(HED_FROM_RGB, tf.float32), axes=1)
    od = tf.tensordot(hed * alpha + beta, tf.constant(RGB_FROM_HED, tf.float32), axes=1)
    return tf.clip_by_value(tf.exp(-od), 0.0, 1.0)


def augment_batch(x: "tf.Tensor", seed: "tf.Tensor", jitter: float = 1.0, stain: float = 0.0) -> "tf.Tensor":
    """Random dihedral transform + colour jitter per image; ``x`` is float32 [0, 1] NHWC, square.

    ``jitter`` scales every colour range (0 turns colour jitter off): stain colour differs far
    more between patients' slides than within one, so stronger jitter trades fit for transfer.
    ``stain`` is the HED jitter's sigma (0 = off; 0.05 is Tellez's "light", 0.2 "strong").
    """
    b = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=9)

    def coin(i):
        return tf.random.stateless_uniform([b, 1, 1, 1], seeds[i]) < 0.5

    def uniform(i, lo, hi):
        return tf.random.stateless_uniform([b, 1, 1, 1], seeds[i], minval=lo, maxval=hi)

    x = tf.where(coin(0), tf.transpose(x, [0, 2, 1, 3]), x)
    x = tf.where(coin(1), tf.reverse(x, axis=[2]), x)
    x = tf.where(coin(2), tf.reverse(x, axis=[1]), x)
    if stain > 0:
        x = stain_jitter(x, seeds[8], stain)

    if jitter <= 0:
        return x
    bright, contrast, sat, hue = BRIGHTNESS * jitter, CONTRAST * jitter, SATURATION * jitter, HUE * jitter
    x = x + uniform(3, -bright, bright)
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    x = (x - mean) * uniform(4, 1 - contrast, 1 + contrast) + mean
    x = tf.clip_by_value(x, 0.0, 1.0)
    hsv = tf.image.rgb_to_hsv(x)
    h = tf.math.floormod(hsv[..., 0:1] + uniform(5, -hue, hue), 1.0)
    s = tf.clip_by_value(hsv[..., 1:2] * uniform(6, 1 - sat, 1 + sat), 0.0, 1.0)
    x = tf.image.hsv_to_rgb(tf.concat([h, s, hsv[..., 2:3]], axis=-1))
    return tf.clip_by_value(x, 0.0, 1.0)


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 64,
    training: bool = False,
    seed: int = 0,
    augment: bool = True,
    jitter: float = 1.0,
    stain: float = 0.0,
    input_size: int | None = None,
    sample_weights: np.ndarray | None = None,
    indices: np.ndarray | None = None,
    targets: np.ndarray | None = None,
) -> "tf.data.Dataset":
    """Batches of ``(x, y)`` or ``(x, y, w)``: x float32 (B, S, S, 3) = pixels / 255, y int32.

    ``training`` shuffles (seeded, reshuffled each epoch) and, with ``augment``, augments.
    ``input_size`` resizes (bilinear) after augmentation, e.g. 50 -> 64 for VGG13.
    ``indices`` restricts to those rows of ``images`` (e.g. ``PatchSet.indices_of(split.train)``)
    without copying them out of a memmap. ``targets`` (N, K) float replaces the int labels as y,
    e.g. (label, teacher probability) for distillation (edgecnn.train.losses).
    """
    labels = np.asarray(labels)
    idx, weights, targets = _checked(images, labels, sample_weights, indices, targets)
    ds = tf.data.Dataset.from_tensor_slices(idx)
    if training:
        ds = ds.shuffle(len(idx), seed=seed, reshuffle_each_iteration=True)
    ds = _gathered(ds.batch(batch_size), images, labels, weights, targets)
    h, w = int(images.shape[1]), int(images.shape[2])
    if training and augment:
        if h != w:
            raise ValueError(f"augmentation needs square patches, got {h}x{w}")
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda batch, s: (augment_batch(batch[0], s, jitter, stain), *batch[1:]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )
    if input_size is not None and (input_size != h or input_size != w):
        ds = ds.map(lambda x, *rest: (tf.image.resize(x, [input_size, input_size]), *rest),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _checked(images: np.ndarray, labels: np.ndarray, sample_weights, indices, targets):
    """The row indices, weights and targets as arrays, after checking they fit ``images``."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, S, S, 3), got {images.dtype} {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if sample_weights is not None and len(sample_weights) != len(labels):
        raise ValueError(f"{len(sample_weights)} sample weights for {len(labels)} labels")
    idx = np.arange(len(labels), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(idx) == 0:
        raise ValueError("make_dataset: no patches to feed")
    weights = None if sample_weights is None else np.asarray(sample_weights, dtype=np.float32)
    if targets is not None:
        targets = np.asarray(targets, dtype=np.float32)
        if targets.ndim != 2 or len(targets) != len(labels):
            raise ValueError(f"targets must be (N, K) for {len(labels)} labels, got {targets.shape}")
    return idx, weights, targets


def _gathered(batches: "tf.data.Dataset", images: np.ndarray, labels: np.ndarray, weights, targets):
    """Batches of row indices -> (x, y[, w]) with x = pixels scaled to [0, 1]."""
    h, w = int(images.shape[1]), int(images.shape[2])
    gather = _gather_fn(images, labels, weights, targets)
    out_types = [tf.uint8, tf.int32 if targets is None else tf.float32] + ([tf.float32] if weights is not None else [])

    def load(batch_idx):
        parts = tf.numpy_function(gather, [batch_idx], out_types, stateful=False)
        parts[0].set_shape([None, h, w, 3])
        parts[1].set_shape([None] if targets is None else [None, targets.shape[1]])
        for p in parts[2:]:
            p.set_shape([None])
        x = tf.cast(parts[0], tf.float32) * SCALE + OFFSET
        return (x, *parts[1:])

    return batches.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
