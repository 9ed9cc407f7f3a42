"""The tf.data pipeline: shapes, dtypes, range, seeded augmentation, memmap input."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.data.balance import sample_weights

tf_mod = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def small(idc_patches):
    # A slice straight from the memmap-backed cache: the pipeline must not need it in RAM.
    return idc_patches.images, idc_patches.labels, np.arange(0, len(idc_patches), 40)


def _first(ds):
    return [t.numpy() for t in next(iter(ds))]


def test_eval_batches_are_exact_scaled_pixels(small):
    from edgecnn.data.pipeline import make_dataset

    images, labels, idx = small
    ds = make_dataset(images, labels, batch_size=16, training=False, indices=idx)
    x, y = _first(ds)
    assert x.shape == (16, 50, 50, 3) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(x, images[idx[:16]].astype(np.float32) / 255.0, rtol=0, atol=1e-7)
    assert np.array_equal(y, labels[idx[:16]])
    n = sum(len(b[1]) for b in ds)
    assert n == len(idx)  # eval keeps every patch, last partial batch included


def test_training_batches_range_and_resize(small):
    from edgecnn.data.pipeline import make_dataset

    images, labels, idx = small
    ds = make_dataset(images, labels, batch_size=32, training=True, seed=0, input_size=64, indices=idx)
    x, y = _first(ds)
    assert x.shape == (32, 64, 64, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) <= {0, 1}
    assert ds.element_spec[0].shape.as_list() == [None, 64, 64, 3]


def test_augmentation_is_seeded(small):
    from edgecnn.data.pipeline import make_dataset

    images, labels, idx = small

    def batch(seed, augment=True):
        return _first(make_dataset(images, labels, 32, training=True, seed=seed, augment=augment, indices=idx))

    a, b, c = batch(7), batch(7), batch(8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # Augmentation changed the pixels of the same (shuffled) patches.
    plain = batch(7, augment=False)
    assert np.array_equal(plain[1], a[1])
    assert not np.allclose(plain[0], a[0])
    # ...but only mildly: a dihedral transform of the patch plus small colour shifts.
    i = 0
    cands = [np.rot90(plain[0][i], k) for k in range(4)]
    cands += [np.fliplr(c_) for c_ in cands]
    assert min(np.abs(c_ - a[0][i]).mean() for c_ in cands) < 0.08


def test_epochs_reshuffle(small):
    from edgecnn.data.pipeline import make_dataset

    images, labels, idx = small
    ds = make_dataset(images, labels, 64, training=True, seed=1, augment=False, indices=idx)
    e1 = np.concatenate([b[1].numpy() for b in ds])
    e2 = np.concatenate([b[1].numpy() for b in ds])
    assert sorted(e1.tolist()) == sorted(e2.tolist()) == sorted(labels[idx].tolist())
    x1 = next(iter(ds))[0].numpy()
    x2 = next(iter(ds))[0].numpy()
    assert not np.array_equal(x1, x2)


def test_sample_weights_and_errors(small):
    from edgecnn.data.pipeline import make_dataset

    images, labels, idx = small
    w = sample_weights(labels)
    x, y, sw = _first(make_dataset(images, labels, 8, training=False, sample_weights=w, indices=idx))
    assert sw.dtype == np.float32 and np.allclose(sw, np.where(y == 1, w[labels == 1][0], w[labels == 0][0]))
    with pytest.raises(ValueError):
        make_dataset(images.astype(np.float32)[:4], labels[:4], 2)
    with pytest.raises(ValueError):
        make_dataset(images[:4], labels[:3], 2)
