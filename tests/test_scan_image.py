"""Frames as cameras and users hand them over: 16-bit, grey, RGBA, too small, truncated."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgecnn.scan.image import ImageError, as_rgb8, read_image


def test_16bit_png_is_scaled_by_full_range(tmp_path):
    a = np.array([[0, 257, 32896, 65535]], dtype=np.uint16).repeat(4, axis=0)
    p = tmp_path / "g16.png"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode.startswith("I")
    rgb = read_image(p)
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 4, 3)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 128, 255])
    # a uint16 RGB array (what a camera SDK hands over) follows the same rule
    np.testing.assert_array_equal(as_rgb8(np.full((2, 2, 3), 65535, np.uint16)), 255)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    p = tmp_path / "grey.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(p)
    rgb = read_image(p)
    assert rgb.shape == (8, 8, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert as_rgb8(np.zeros((3, 3), np.uint8)).shape == (3, 3, 3)


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((2, 3, 4), np.uint8)
    a[..., 0] = 200
    a[:, 0, 3] = 0      # transparent -> white
    a[:, 1, 3] = 255    # opaque -> the colour
    a[:, 2, 3] = 128    # half -> between
    p = tmp_path / "rgba.png"
    Image.fromarray(a, "RGBA").save(p)
    for rgb in (read_image(p), as_rgb8(a)):
        np.testing.assert_array_equal(rgb[0, 0], [255, 255, 255])
        np.testing.assert_array_equal(rgb[0, 1], [200, 0, 0])
        assert 200 < rgb[0, 2, 0] < 255 and 100 < rgb[0, 2, 1] < 155


def test_truncated_file_error_names_the_file(tmp_path):
    p = tmp_path / "frame_0007.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:3000])
    with pytest.raises(ImageError, match=r"frame_0007\.png.*truncated or corrupt"):
        read_image(p)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png: empty file"):
        read_image(empty)
    junk = tmp_path / "notes.png"
    junk.write_text("not an image")
    with pytest.raises(ImageError, match="notes.png: not an image"):
        read_image(junk)


def test_bad_arrays_are_refused():
    with pytest.raises(ImageError, match="float images must hold values in"):
        as_rgb8(np.full((4, 4, 3), 2.0))
    with pytest.raises(ImageError, match="expected an H×W"):
        as_rgb8(np.zeros((4, 4, 5), np.uint8))
    np.testing.assert_array_equal(as_rgb8(np.ones((2, 2, 3))), 255)


def test_scanner_refuses_small_and_truncated_frames(scan_backend, tmp_path):
    from edgecnn.scan import Scanner

    s = Scanner(scan_backend)
    with pytest.raises(ValueError, match="small.png.*tile is 50×50"):
        small = tmp_path / "small.png"
        Image.fromarray(np.full((40, 60, 3), 120, np.uint8)).save(small)
        s.scan(small)
    bad = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 120, 3), np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[:2000])
    with pytest.raises(ImageError, match="cut.png"):
        s.scan(bad)
    # with edge="pad" a small frame is one white-padded tile
    r = Scanner(scan_backend, edge="pad").scan(np.full((40, 60, 3), 120, np.uint8))
    assert r.tiles == 2 and r.tissue_tiles == 2
