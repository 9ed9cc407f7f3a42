"""The fast overlay draws the same picture as the per-pixel rule (``blend``, the reference):
pixel for pixel, on real mosaics scanned by the real int8 model, outlines included."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.scan import Scanner
from tests.fixtures_scan import densest_window
from edgecnn.scan.overlay import (
    OUTLINE_RGB,
    blend,
    blend_cells,
    legend_image,
    legend_scale,
    overlay,
    overlay_array,
    paste_legend,
)


def _reference(frame, result, thr):
    return blend(frame, result.heat, thr)


def _positive_threshold(result) -> float:
    """A threshold that makes a good share of the tissue positive, so outlines are drawn."""
    p = result.prob_map[~np.isnan(result.prob_map)]
    return float(np.quantile(p, 0.6))


@pytest.mark.parametrize("patient", ["10253", "14082"])
def test_same_picture_as_the_per_pixel_rule(patient, patient_mosaic, scan_backend):
    frame = densest_window(patient_mosaic(patient))      # a real 1080p field of view
    r = Scanner(scan_backend).scan(frame)
    thr = _positive_threshold(r)
    fast = overlay_array(frame, r, threshold=thr, legend=False)
    ref = _reference(frame, r, thr)
    assert r.tissue_tiles > 100
    outline = (ref == OUTLINE_RGB).all(-1)
    assert outline.sum() > 1000, "the test needs outlines on the picture"
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize("stride,origin,edge", [(25, (0, 0), "drop"), (50, (17, 33), "drop"), (50, (0, 0), "pad")])
def test_same_picture_with_overlap_origin_and_padding(stride, origin, edge, mosaic, scan_backend):
    frame = np.ascontiguousarray(mosaic.image[200:745, 300:1033])     # not a multiple of 50 either way
    r = Scanner(scan_backend, edge=edge).scan(frame, stride=stride, origin=origin)
    thr = _positive_threshold(r)
    fast = overlay_array(frame, r, threshold=thr, legend=False)
    ref = _reference(frame, r, thr)
    if edge == "pad":
        # Cells cut by the frame edge: the per-pixel rule outlines them at the edge, the grid rule
        # past it. Everywhere else the picture is the same.
        h, w = frame.shape[:2]
        inner = (slice(0, h - h % 50 - 2), slice(0, w - w % 50 - 2))
        np.testing.assert_array_equal(fast[inner], ref[inner])
        assert (fast != ref).any(-1).mean() < 0.01
    else:
        np.testing.assert_array_equal(fast, ref)


def test_blank_and_rescaled_frames(mosaic, scan_backend):
    blank = np.full((300, 400, 3), 255, np.uint8)
    r = Scanner(scan_backend).scan(blank)
    np.testing.assert_array_equal(overlay_array(blank, r, legend=False), blank)
    crop = np.ascontiguousarray(mosaic.image[:500, :700])
    half = Scanner(scan_backend, rescale=0.5).scan(crop)          # heat pixels ≠ frame pixels: per-pixel path
    np.testing.assert_array_equal(overlay_array(crop, half, legend=False),
                                  blend(crop, np.asarray(half.heat.repeat(2, 0).repeat(2, 1)), half.threshold))
    with pytest.raises(ValueError, match="too small"):
        blend_cells(crop, np.zeros((2, 2), np.float32), 2, (0, 0), 0.5)


def test_legend_scales_with_the_frame(mosaic, scan_backend):
    small, big = legend_image(0.5, 0.25, legend_scale(640, 480)), legend_image(0.5, 0.25, legend_scale(1920, 1080))
    assert big.height >= 2 * small.height and big.width >= 2 * small.width
    assert big.height / 1080 >= 0.04            # ~4 % of a 1080p frame: readable at a glance
    frame = np.full((1080, 1920, 3), 200, np.uint8)
    paste_legend(frame, 0.5, 0.25)
    ys, xs = np.nonzero((frame != 200).any(-1))
    assert ys.max() < 200 and xs.max() < 800 and ys.min() >= 4
    tiny = np.full((30, 50, 3), 7, np.uint8)
    paste_legend(tiny, 0.5, 0.25)                      # too small for a legend: left alone
    assert (tiny == 7).all()
    crop = np.ascontiguousarray(mosaic.image[:400, :600])
    r = Scanner(scan_backend).scan(crop)
    assert overlay(crop, r).size == (600, 400)
