"""A real mosaic written as a pyramidal TIFF, scanned band by band through OpenSlide: the same
tiles and IDC share as the same pixels scanned as one PNG, outputs QuPath can import, and a
scan killed midway that resumes to the same result."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("openslide")
pytest.importorskip("scipy")

from edgecnn.scan.bigimage import write_pyramid  # noqa: E402
from edgecnn.scan.checkpoint import CheckpointError  # noqa: E402
from edgecnn.scan.slide import open_slide  # noqa: E402
from edgecnn.scan.slidescan import scan_slide  # noqa: E402

PATIENT = "10253"


@pytest.fixture(scope="module")
def scanner():
    from edgecnn.scan.scanner import Scanner

    return Scanner(threads=1, profile=None)   # the release model: what a user's scan runs


@pytest.fixture(scope="module")
def field(patient_mosaic, tmp_path_factory):
    pixels = patient_mosaic(PATIENT).image
    path = write_pyramid(pixels, tmp_path_factory.mktemp("slide") / f"p{PATIENT}.tif", mpp=4.0)
    return pixels, path


def test_same_tiles_as_png(tmp_path, scanner, field):
    from PIL import Image

    from edgecnn.scan.image import read_image

    pixels, path = field
    png = tmp_path / "same.png"
    Image.fromarray(pixels).save(png)
    whole = scanner.scan(read_image(png), stride=scanner.tile_size)
    s = scan_slide(open_slide(path), scanner, tmp_path / "out", band_rows=4)
    assert (s["rows"], s["cols"]) == whole.prob_map.shape
    assert s["tissue_tiles"] == whole.tissue_tiles > 100
    assert s["positive_tiles"] == whole.positive_tiles > 0
    # The release's context stage runs once over the slide's grid: band edges (every 4 rows) see
    # their neighbours, so the field-level tiles equal the whole frame's.
    assert s["context"] == whole.context and s["context"] is not None
    assert s["idc_share"] == pytest.approx(whole.idc_share, abs=1e-12)
    heat = np.asarray(Image.open(s["outputs"]["heat"]))
    assert heat.shape == (*whole.prob_map.shape, 4)
    assert np.array_equal(heat[..., 3] > 0, whole.tissue_mask)
    tile_mm2 = (scanner.tile_size * 4.0 / 1000) ** 2
    assert s["tissue_area_mm2"] <= s["tissue_tiles"] * tile_mm2 + 1e-9
    assert 0 < s["idc_area_mm2"] <= s["positive_tiles"] * tile_mm2 + 1e-9
    assert s["tiles_per_s"] > 0 and s["seconds"] > 0


def test_geojson_for_qupath(tmp_path, scanner, field):
    _, path = field
    s = scan_slide(open_slide(path), scanner, tmp_path)
    fc = json.loads(open(s["outputs"]["geojson"]).read())
    assert fc["type"] == "FeatureCollection" and fc["features"]
    tiles = 0
    for f in fc["features"]:
        p = f["properties"]
        assert f["type"] == "Feature" and f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert p["objectType"] == "annotation" and p["classification"]["name"] == "IDC"
        assert s["threshold"] <= p["measurements"]["max_probability"] <= 1
        ring = f["geometry"]["coordinates"][0] if f["geometry"]["type"] == "Polygon" else f["geometry"]["coordinates"][0][0]
        assert ring[0] == ring[-1] and len(ring) >= 5
        tiles += p["measurements"]["tiles"]
    assert tiles == s["positive_tiles"]      # every positive tile in exactly one region
    regions = sum(f["properties"]["measurements"]["area_mm2"] for f in fc["features"])
    assert regions == pytest.approx(s["idc_region_area_mm2"]) and s["idc_area_mm2"] <= s["idc_region_area_mm2"]
    _assert_valid_for_jts(fc, tile_area=(scanner.tile_size * open_slide(path).to_level0()) ** 2)


def _assert_valid_for_jts(fc, tile_area):
    """QuPath's geometry engine is JTS; shapely (GEOS) applies the same OGC rules."""
    shapely = pytest.importorskip("shapely")
    from shapely.geometry import shape

    for f in fc["features"]:
        g = shape(f["geometry"])
        assert g.is_valid, (f["properties"]["name"], shapely.validation.explain_validity(g))
        assert g.area == pytest.approx(f["properties"]["measurements"]["tiles"] * tile_area)


def test_geojson_regions_are_valid_on_hard_masks():
    """Random masks full of corner touches, self-touching regions and holes touching their shell."""
    from edgecnn.scan.geojson import feature_collection

    rng = np.random.default_rng(0)
    for density in (0.3, 0.5, 0.7):
        mask = rng.random((40, 60)) < density
        fc = feature_collection(mask, mask.astype(float), tile=50, to_level0=1.0, tile_mm2=0.04)
        _assert_valid_for_jts(fc, tile_area=2500)
        assert sum(f["properties"]["measurements"]["tiles"] for f in fc["features"]) == mask.sum()
    # A ring of tiles closed by one corner touch: a shell and a hole that meet at one point.
    ring = np.zeros((5, 5), bool)
    ring[1, 1:4] = ring[1:4, 1] = ring[3, 1:3] = ring[2, 3] = True
    fc = feature_collection(ring, ring.astype(float), tile=1, to_level0=1.0, tile_mm2=1.0)
    _assert_valid_for_jts(fc, tile_area=1)


def test_killed_scan_resumes(tmp_path, scanner, field):
    _, path = field
    full = scan_slide(open_slide(path), scanner, tmp_path / "full", band_rows=2)
    calls = []

    def die(done, total):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        scan_slide(open_slide(path), scanner, out, band_rows=2, progress=die, checkpoint_s=0)
    ck = out / f"{path.stem}.checkpoint.npz"
    assert ck.is_file()
    from edgecnn.scan.scanner import Scanner

    other = Scanner(scanner.backend, threshold=0.9)
    with pytest.raises(CheckpointError, match="different scan"):
        scan_slide(open_slide(path), other, out, band_rows=2, resume=True)
    done = scan_slide(open_slide(path), scanner, out, band_rows=2, resume=True)
    assert done["resumed_from_y"] == 3 * 2 * scanner.tile_size
    for key in ("tissue_tiles", "positive_tiles", "idc_share", "tissue_area_mm2"):
        assert done[key] == full[key]
    assert not ck.exists()
