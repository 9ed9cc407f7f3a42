"""Tile grid, tissue fraction and heat map against naive per-tile loops (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.scan.tiling import covered_frame, heat_map, make_grid, tile_view, tissue_fraction


def _frame(h=260, w=390, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.integers(60, 200, (h, w, 3), dtype=np.uint8)
    f[:, 200:] = 255            # white right part: background
    f[100:180, 50:120] = 5      # black block: background
    f[10:11, 220:240] = 120     # a one-pixel tissue line inside the white part
    return f


def test_1080p_grid_has_798_tiles_and_pad_covers_the_edge():
    g = make_grid(1080, 1920, 50, 50)
    assert (g.rows, g.cols) == (21, 38) and g.rows * g.cols == 798
    gp = make_grid(1080, 1920, 50, 50, edge="pad")
    assert (gp.rows, gp.cols) == (22, 39)
    g25 = make_grid(1080, 1920, 50, 25)
    assert (g25.rows, g25.cols) == (42, 75)


@pytest.mark.parametrize("h,w,edge", [(40, 400, "drop"), (400, 49, "drop")])
def test_frame_smaller_than_a_tile_is_refused(h, w, edge):
    with pytest.raises(ValueError, match="tile is 50×50"):
        make_grid(h, w, 50, 50, edge=edge)


def test_tile_view_is_the_frame_without_copies():
    f = _frame()
    g = make_grid(*f.shape[:2], 50, 30, origin=(7, 3))
    cov = covered_frame(f, g)
    v = tile_view(cov, g)
    assert np.shares_memory(v, f)
    for r, c in [(0, 0), (2, 5), (g.rows - 1, g.cols - 1)]:
        y, x = g.ys[r], g.xs[c]
        np.testing.assert_array_equal(v[r, c], f[y:y + 50, x:x + 50])


def test_pad_edge_fills_white():
    f = _frame(120, 130)
    g = make_grid(120, 130, 50, 50, edge="pad")
    cov = covered_frame(f, g)
    assert cov.shape[:2] == (150, 150)
    t = tile_view(cov, g)[2, 2]
    np.testing.assert_array_equal(t[:20, :30], f[100:120, 100:130])
    assert (t[20:] == 255).all() and (t[:, 30:] == 255).all()


@pytest.mark.parametrize("stride", [50, 25, 30, 7])
def test_tissue_fraction_matches_a_per_tile_loop(stride):
    f = _frame()
    g = make_grid(*f.shape[:2], 50, stride)
    frac = tissue_fraction(covered_frame(f, g), g)
    lo, hi = f.min(axis=2), f.max(axis=2)
    tissue = ~((lo >= 220) | (hi <= 25))
    for r in range(g.rows):
        for c in range(g.cols):
            y, x = g.ys[r], g.xs[c]
            assert frac[r, c] == pytest.approx(tissue[y:y + 50, x:x + 50].mean(), abs=1e-6)


def test_one_pixel_line_counts_as_tissue_white_does_not():
    f = _frame()
    g = make_grid(*f.shape[:2], 50, 50)
    frac = tissue_fraction(f, g)
    assert frac[0, 4] == pytest.approx(20 / 2500)   # the 20-px line at x 220..239, y 10
    assert frac[1:, 4:].max() == 0.0                 # white
    assert frac[2, 1] == 0.0                         # inside the black block


@pytest.mark.parametrize("stride", [50, 25, 20, 30, 60])
def test_heat_is_the_mean_of_covering_tissue_tiles(stride):
    f = _frame()
    g = make_grid(*f.shape[:2], 50, stride, origin=(3, 5))
    rng = np.random.default_rng(1)
    p = rng.random((g.rows, g.cols)).astype(np.float32)
    p[rng.random(p.shape) < 0.3] = np.nan
    heat = heat_map(p, g)
    assert heat.shape == f.shape[:2]
    ref_sum = np.zeros(f.shape[:2])
    ref_n = np.zeros(f.shape[:2])
    for r in range(g.rows):
        for c in range(g.cols):
            if not np.isnan(p[r, c]):
                y, x = g.ys[r], g.xs[c]
                ref_sum[y:y + 50, x:x + 50] += p[r, c]
                ref_n[y:y + 50, x:x + 50] += 1
    with np.errstate(invalid="ignore"):
        ref = np.where(ref_n > 0, ref_sum / ref_n, np.nan)
    np.testing.assert_allclose(heat, ref, atol=1e-6, equal_nan=True)
