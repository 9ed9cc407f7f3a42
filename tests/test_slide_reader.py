"""Huge images and slides, read back: Pillow's cap replaced by ours, TIFFs streamed band by band
(tifffile, OpenSlide) with the exact pixels of a real mosaic, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("openslide")
pytest.importorskip("tifffile")

from edgecnn.scan.bigimage import write_pyramid  # noqa: E402
from edgecnn.scan.image import ImageError, read_image  # noqa: E402
from edgecnn.scan.slide import OpenSlideReader, SlideError, TiffReader, open_slide  # noqa: E402

PATIENT = "14082"


@pytest.fixture(scope="module")
def pixels(patient_mosaic) -> np.ndarray:
    return patient_mosaic(PATIENT).image


def _bands(reader, h: int) -> np.ndarray:
    return np.concatenate([b for _, b in reader.bands(h)], axis=0)


def test_cap_names_file_and_flag(tmp_path, pixels):
    png = tmp_path / "field.png"
    Image.fromarray(pixels).save(png)
    h, w = pixels.shape[:2]
    with pytest.raises(ImageError, match=r"field\.png.*above the cap.*--max-pixels"):
        read_image(png, max_pixels=w * h - 1)
    assert np.array_equal(read_image(png, max_pixels=w * h), pixels)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485   # Pillow's own guard stays on for the rest of the process


@pytest.mark.parametrize("layout", [{"rowsperstrip": 37}, {"tile": (128, 128)}])
def test_tifffile_streams_exact_pixels(tmp_path, pixels, layout):
    import tifffile

    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, pixels, photometric="rgb", **layout)
    r = TiffReader(path)
    got = [(y, b) for y, b in r.bands(150)]
    assert all(b.shape[0] <= 150 for _, b in got)
    assert np.array_equal(np.concatenate([b for _, b in got]), pixels)
    half = TiffReader(path, rescale=0.5)
    assert _bands(half, 100).shape == (half.height, half.width, 3) == (pixels.shape[0] // 2, pixels.shape[1] // 2, 3)


def test_pyramid_through_openslide(tmp_path, pixels):
    path = write_pyramid(pixels, tmp_path / "slide.tif", mpp=4.0)
    r = open_slide(path)
    assert isinstance(r, OpenSlideReader) and r.mpp == pytest.approx(4.0) and r.slide.level_count > 2
    assert r.level == 0 and np.array_equal(_bands(r, 400), pixels)
    # A 2 µm/px slide: the level of downsample 2 is read, not level 0 resampled.
    fine = open_slide(path, mpp=2.0)
    assert fine.level == 1 and (fine.width, fine.height) == (pixels.shape[1] // 2, pixels.shape[0] // 2)
    assert _bands(fine, 200).shape == (fine.height, fine.width, 3)
    # 3 µm/px: no level of downsample 1.33, so level 0 is read and resampled.
    odd = open_slide(path, mpp=3.0)
    assert odd.level == 0 and _bands(odd, 300).shape == (odd.height, odd.width, 3)


def test_slide_without_mpp_asks_for_it(tmp_path, pixels):
    path = write_pyramid(pixels, tmp_path / "nompp.tif")
    with pytest.raises(SlideError, match=r"nompp\.tif.*--mpp"):
        open_slide(path)
    assert open_slide(path, mpp=4.0).mpp == 4.0


def test_missing_level(tmp_path, pixels):
    path = write_pyramid(pixels, tmp_path / "two.tif", mpp=4.0, levels=2)
    with pytest.raises(SlideError, match=r"two\.tif: no level 5.*levels 0–1.*--level"):
        open_slide(path, level=5)


def test_truncated_and_non_slide(tmp_path, pixels):
    path = write_pyramid(pixels, tmp_path / "full.tif", mpp=4.0)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(SlideError, match=r"cut\.tif.*(truncated|missing)"):
        _bands(open_slide(cut), 400)
    fake = tmp_path / "notes.svs"
    fake.write_text("not a slide")
    with pytest.raises(SlideError, match=r"notes\.svs: not a slide OpenSlide can read"):
        open_slide(fake)


def test_wide_slide_read_in_column_chunks(tmp_path, pixels, monkeypatch):
    import edgecnn.scan.slide as slide

    monkeypatch.setattr(slide, "CHUNK_PX", 300)   # 2800 px wide → 10 chunks of 250 px (tile-aligned)
    r = open_slide(write_pyramid(pixels, tmp_path / "wide.tif", mpp=4.0))
    assert np.array_equal(_bands(r, 200), pixels)


def test_40x_slide_reads_the_16x_level(tmp_path, pixels):
    """A 40× scan (0.25 µm/px) is read at its 16:1 level: the dataset's own downsampling."""
    r = open_slide(write_pyramid(pixels, tmp_path / "x40.tif", mpp=0.25))
    assert r.level == 4 and r.level_ds == pytest.approx(16, rel=0.01) and r.factor == 16
    assert (r.width, r.height) == (pixels.shape[1] // 16, pixels.shape[0] // 16)
    assert _bands(r, 50).shape == (r.height, r.width, 3)


def test_print_dpi_is_not_taken_as_the_scan_scale(tmp_path, pixels):
    # 72 dpi = 352.8 µm/px: taken at its word it would enlarge the image 88× to 4 µm/px.
    path = write_pyramid(pixels, tmp_path / "dpi72.tif", mpp=25400 / 72)
    with pytest.raises(SlideError, match=r"dpi72\.tif.*enlarge it 88×.*--mpp"):
        open_slide(path)
    assert open_slide(path, mpp=4.0).width == pixels.shape[1]   # --mpp is the user's word: obeyed
    assert open_slide(write_pyramid(pixels, tmp_path / "fine.tif", mpp=3.0)).mpp == pytest.approx(3.0)   # ≤ 1.5×
