"""Scanning real tissue: a patient's patch grid rebuilt as a mosaic, the real int8 TFLite model,
compared with the same model on the dataset's own patch files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.data.decode import decode_patch
from edgecnn.metrics import agreement
from edgecnn.scan import Scanner, overlay


@pytest.fixture(scope="module")
def per_patch(mosaic, scan_backend):
    """The model's probability for every patch file of the mosaic, decoded as training decodes them."""
    patches = np.stack([decode_patch(Path(f).read_bytes()).image for *_, f in mosaic.tiles])
    cells = np.array([mosaic.cell(x, y) for x, y, *_ in mosaic.tiles])
    return scan_backend.predict(patches, batch_size=256), cells


def test_mosaic_rebuilds_the_region(mosaic, idc_data):
    assert mosaic.origin == (51, 51) and mosaic.grid_aligned
    xs = [t[0] for t in mosaic.tiles]
    ys = [t[1] for t in mosaic.tiles]
    assert mosaic.image.shape == (max(ys) - 51 + 50, max(xs) - 51 + 50, 3)
    assert len(mosaic.tiles) == len(list((idc_data / "8863").glob("*/*.png"))) and not mosaic.skipped
    # every pixel outside a patch is white and unlabelled; labelled area = the patches' real areas
    areas = 0
    for x, y, label, f in mosaic.tiles:
        with Image.open(f) as im:
            px = np.asarray(im.convert("RGB"))
        r, c = y - 51, x - 51
        h, w = px.shape[:2]
        areas += h * w
        if (h, w) != (50, 50) or x == xs[0]:
            np.testing.assert_array_equal(mosaic.image[r:r + h, c:c + w], px)
            assert (mosaic.label_mask[r:r + h, c:c + w] == label).all()
        if (h, w) != (50, 50):   # border patch: real size, the rest of its cell white and unlabelled
            assert (mosaic.label_mask[r:r + 50, c:c + 50] == -1).sum() == 2500 - h * w
    assert (mosaic.label_mask >= 0).sum() == areas
    assert (mosaic.image[mosaic.label_mask < 0] == 255).all()


def test_scan_matches_per_patch_classification(mosaic, scan_backend, per_patch):
    p_ref, cells = per_patch
    thr = float(np.median(p_ref))   # a threshold that splits the patches, so agreement can fail
    r = Scanner(scan_backend, threshold=thr).scan(mosaic.image, stride=50)
    assert (r.grid.rows, r.grid.cols) == (mosaic.image.shape[0] // 50, mosaic.image.shape[1] // 50)
    p_scan = r.prob_map[cells[:, 0], cells[:, 1]]
    assert not np.isnan(p_scan).any(), "a real patch (border ones included) was taken for background"
    a = agreement(p_ref, p_scan, thr)
    assert a["agreement"] >= 0.99
    assert a["max_abs_dp"] < 1e-6           # same pixels in, same int8 model: the same numbers out
    no_patch = np.ones(r.prob_map.shape, bool)
    no_patch[cells[:, 0], cells[:, 1]] = False
    assert not r.tissue_mask[no_patch].any()
    assert r.tissue_tiles == len(mosaic.tiles)
    assert r.positive_tiles == int((p_ref >= thr).sum())
    assert r.idc_share == pytest.approx(r.positive_tiles / r.tissue_tiles)
    assert set(r.timing) == {"prepare", "mask", "tiling", "inference", "context", "total"}


def test_overlapping_stride_averages_tiles(mosaic, scan_backend):
    crop = mosaic.image[:600, :800]
    s = Scanner(scan_backend)
    r50 = s.scan(crop, stride=50)
    r25 = s.scan(crop, stride=25)
    assert (r25.grid.rows, r25.grid.cols) == (23, 31)
    np.testing.assert_allclose(r25.prob_map[::2, ::2], r50.prob_map, atol=1e-6, equal_nan=True)
    # a pixel under four tissue tiles of the stride-25 grid: rows r, r+1 and cols c, c+1
    full = ~np.isnan(r25.prob_map)
    both = full[:-1, :-1] & full[1:, :-1] & full[:-1, 1:] & full[1:, 1:]
    r, c = np.argwhere(both)[0]
    y, x = 25 * r + 35, 25 * c + 35
    assert r25.heat[y, x] == pytest.approx(r25.prob_map[r:r + 2, c:c + 2].mean(), abs=1e-6)
    assert r50.heat[y, x] == pytest.approx(r50.prob_map[y // 50, x // 50], abs=1e-6)


def test_origin_and_rescale(mosaic, scan_backend):
    crop = mosaic.image[:500, :700]
    s = Scanner(scan_backend)
    r = s.scan(crop, origin=(25, 10))
    assert r.tile_x[0] == 25 and r.tile_y[0] == 10 and r.grid.cols == 13 and r.grid.rows == 9
    assert np.isnan(r.heat[:10]).all()
    half = Scanner(scan_backend, rescale=0.5).scan(crop)
    assert half.grid.width == 350 and half.heat.shape == (250, 350)
    im = overlay(crop, half)
    assert im.size == (700, 500)


def test_blank_frames_skip_inference(scan_backend):
    s = Scanner(scan_backend)
    rng = np.random.default_rng(0)
    frames = [np.full((1080, 1920, 3), 255, np.uint8),
              np.clip(240 + rng.normal(0, 4, (1080, 1920, 3)), 0, 255).astype(np.uint8),   # noisy empty field
              np.zeros((1080, 1920, 3), np.uint8)]
    for r in s.scan_frames(frames):
        assert r.tiles == 798 and r.tissue_tiles == 0 and r.idc_share == 0.0
        assert np.isnan(r.prob_map).all() and np.isnan(r.heat).all()
        assert r.ms_per_frame > 0


def test_overlay_marks_positive_tiles(mosaic, scan_backend, per_patch):
    p_ref, _ = per_patch
    thr = float(np.quantile(p_ref, 0.8))
    crop = mosaic.image[:1000, :1000]
    r = Scanner(scan_backend, threshold=thr).scan(crop)
    im = np.asarray(overlay(crop, r, legend=False)).astype(int)
    assert im.shape == crop.shape
    bg = np.isnan(r.heat)
    np.testing.assert_array_equal(im[bg], crop[bg])            # background left as it was
    with np.errstate(invalid="ignore"):
        pos = r.heat >= thr
    assert pos.sum() >= 2500, "the 80 % quantile threshold leaves a positive tile in a 1000×1000 crop"
    assert (im[pos][:, 0] - im[pos][:, 2]).mean() > (crop[pos][:, 0].astype(int) - crop[pos][:, 2]).mean()
    with_legend = np.asarray(overlay(crop, r))
    assert (with_legend[:40, :170] != im[:40, :170]).any()
