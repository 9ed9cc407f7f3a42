"""H&E stain augmentation and test-time augmentation, on real patches."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def real_batch(idc_data):
    from edgecnn.data import load_patches

    return np.asarray(load_patches(str(idc_data)).images[:64])


def test_stain_jitter_identity_and_range(real_batch):
    from edgecnn._tf import tf
    from edgecnn.data.pipeline import stain_jitter

    x = tf.constant(real_batch.astype(np.float32) / 255)
    same = stain_jitter(x, tf.constant([1, 2], tf.int64), 1e-9).numpy()
    np.testing.assert_allclose(same, x.numpy(), atol=1e-5)   # OD -> HED -> OD round-trips
    a = stain_jitter(x, tf.constant([1, 2], tf.int64), 0.05).numpy()
    b = stain_jitter(x, tf.constant([1, 2], tf.int64), 0.05).numpy()
    c = stain_jitter(x, tf.constant([3, 4], tf.int64), 0.05).numpy()
    np.testing.assert_array_equal(a, b)                       # seeded: reproducible batches
    assert 0.002 < np.abs(a - x.numpy()).mean() < 0.05          # a real but mild change
    assert np.abs(a - c).mean() > 0.002
    assert a.min() >= 0 and a.max() <= 1
    # Stronger sigma, stronger change: the knob does what it says.
    d = stain_jitter(x, tf.constant([1, 2], tf.int64), 0.2).numpy()
    assert np.abs(d - x.numpy()).mean() > 2 * np.abs(a - x.numpy()).mean()


def test_stain_jitter_moves_haematoxylin_and_eosin_separately(real_batch):
    """Per-image, per-stain draws: the change is not one global colour shift."""
    from edgecnn._tf import tf
    from edgecnn.data.pipeline import stain_jitter

    x = tf.constant(real_batch.astype(np.float32) / 255)
    y = stain_jitter(x, tf.constant([5, 6], tf.int64), 0.1).numpy()
    shift = (y - x.numpy()).mean(axis=(1, 2))                  # (N, 3) mean RGB change per image
    assert np.std(shift[:, 0]) > 1e-3 and np.corrcoef(shift[:, 0], shift[:, 2])[0, 1] < 0.999


def test_dihedral_views_are_the_eight_symmetries(real_batch):
    from edgecnn.tta import dihedral_views

    views = dihedral_views(real_batch[:4])
    assert len(views) == 8
    np.testing.assert_array_equal(views[0], real_batch[:4])
    flat = {v.tobytes() for v in views}
    assert len(flat) == 8


def test_backend_tta_is_mean_over_views(real_batch):
    """Backend.predict(tta=True) on the release model = the mean of its 8 single-view predictions."""
    from edgecnn import runtime
    from edgecnn.scan.model import default_model_path
    from edgecnn.tta import dihedral_views

    be = runtime.load(default_model_path())
    manual = np.mean([be.predict(v) for v in dihedral_views(real_batch)], axis=0)
    np.testing.assert_allclose(be.predict(real_batch, tta=True), manual, atol=1e-6)
    assert not np.allclose(be.predict(real_batch, tta=True), be.predict(real_batch))
    with pytest.raises(ValueError, match="square"):
        from edgecnn.tta import tta_predict

        tta_predict(lambda v: v[:, 0, 0, 0], real_batch[:, :, :40])
