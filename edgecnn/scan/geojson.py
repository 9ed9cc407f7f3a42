"""IDC regions as GeoJSON that QuPath imports (File → Import objects, or drag the file onto the slide).

Positive tiles are merged into regions (4-connected groups of tiles) and each region's outline is
traced along the tile edges, so a region is one Polygon (holes included) however many tiles it
has: QuPath shows a few dozen editable annotations, not thousands of squares. Coordinates are
level-0 slide pixels (what QuPath expects): model-scale tile corners times ``to_level0``.

Each Feature: ``properties`` = {"objectType": "annotation", "classification": {"name": "IDC",
"color": [...]}, "name", "measurements": {"tiles", "mean_probability", "max_probability",
"area_mm2"}} — QuPath reads ``objectType``, ``classification`` and ``measurements``.
No shapely: rings are traced on the tile grid directly.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

IDC_COLOR = [200, 0, 0]


def _edges(mask: np.ndarray) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Directed boundary edges (vertex → next vertex), interior on the right in image coordinates
    (x right, y down): outer rings run clockwise on screen, holes counter-clockwise."""
    out: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    p = np.pad(mask, 1)
    rr, cc = np.nonzero(mask)
    for r, c in zip(rr.tolist(), cc.tolist()):
        if not p[r, c + 1]:         # above
            out[(c, r)].append((c + 1, r))
        if not p[r + 1, c + 2]:     # right
            out[(c + 1, r)].append((c + 1, r + 1))
        if not p[r + 2, c + 1]:     # below
            out[(c + 1, r + 1)].append((c, r + 1))
        if not p[r + 1, c]:         # left
            out[(c, r + 1)].append((c, r))
    return out


def _turn_order(prev: tuple[int, int], cur: tuple[int, int], options: list[tuple[int, int]]) -> tuple[int, int]:
    """At a vertex two regions touch only diagonally, take the right turn (stay inside this tile),
    so diagonal neighbours stay separate rings and no ring crosses itself."""
    dx, dy = cur[0] - prev[0], cur[1] - prev[1]
    right = (cur[0] - dy, cur[1] + dx)
    return right if right in options else options[0]


def trace_rings(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Closed rings of grid vertices (first point repeated at the end) around ``mask``'s True cells."""
    edges = _edges(mask)
    rings = []
    while edges:
        start = next(iter(edges))
        ring, prev, cur = [start], None, start
        while True:
            options = edges[cur]
            nxt = options[0] if prev is None or len(options) == 1 else _turn_order(prev, cur, options)
            options.remove(nxt)
            if not options:
                del edges[cur]
            prev, cur = cur, nxt
            if cur == start:
                break
            ring.append(cur)
        for part in _split_at_repeats(ring):
            simple = _simplify(part)
            rings.append(simple + [simple[0]])
    return rings


def _split_at_repeats(ring: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Split a closed walk at every vertex it passes twice. Where a region touches itself at a
    corner, its boundary is one walk through that corner twice: a self-touching ring, which
    QuPath's geometry engine (JTS) and shapely call invalid. Split, it is a shell and a hole that
    touch at one point (valid OGC), or two holes that do."""
    out, todo = [], [ring]
    while todo:
        r = todo.pop()
        seen: dict[tuple[int, int], int] = {}
        for i, v in enumerate(r):
            if v in seen:
                j = seen[v]
                todo += [r[j:i], r[:j] + r[i:]]
                break
            seen[v] = i
        else:
            out.append(r)
    return out


def _simplify(ring: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop vertices in the middle of straight runs."""
    n = len(ring)
    keep = []
    for i, (x, y) in enumerate(ring):
        (ax, ay), (bx, by) = ring[i - 1], ring[(i + 1) % n]
        if (x - ax) * (by - y) - (y - ay) * (bx - x) != 0:
            keep.append((x, y))
    return keep


def signed_area(ring: list[tuple[int, int]]) -> float:
    """Shoelace area; positive for rings that run clockwise on screen (y down): outer rings."""
    a = 0.0
    for (x0, y0), (x1, y1) in zip(ring, ring[1:]):
        a += x0 * y1 - x1 * y0
    return a / 2.0


def _inside(pt: tuple[float, float], ring: list[tuple[int, int]]) -> bool:
    x, y = pt
    hit = False
    for (x0, y0), (x1, y1) in zip(ring, ring[1:]):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            hit = not hit
    return hit


def region_polygons(mask: np.ndarray) -> list[list[list[tuple[int, int]]]]:
    """One polygon per region: [outer ring, hole rings...], in grid-vertex coordinates."""
    rings = trace_rings(mask)
    outers = [r for r in rings if signed_area(r) > 0]
    holes = [r for r in rings if signed_area(r) < 0]
    polys = [[o] for o in outers]
    for h in holes:
        probe = _hole_probe(h)
        for poly in sorted(polys, key=lambda p: abs(signed_area(p[0]))):
            if _inside(probe, poly[0]):
                poly.append(h)
                break
    return polys


def _hole_probe(hole: list[tuple[int, int]]) -> tuple[float, float]:
    """A point just to the right of the hole's first edge: on the tissue side, inside its outer ring."""
    (x0, y0), (x1, y1) = hole[0], hole[1]
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    dx, dy = np.sign(x1 - x0), np.sign(y1 - y0)
    return mx - 0.25 * dy, my + 0.25 * dx


def feature_collection(positive: np.ndarray, probs: np.ndarray, tile: int, to_level0: float,
                       tile_mm2: float, origin: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """GeoJSON FeatureCollection of the IDC regions of a (rows, cols) ``positive`` tile mask."""
    from scipy import ndimage

    labels, n = ndimage.label(positive)
    feats = []
    for k in range(1, n + 1):
        region = labels == k
        p = probs[region]
        polys = [[[[round((origin[0] + x * tile) * to_level0, 2), round((origin[1] + y * tile) * to_level0, 2)]
                   for x, y in ring] for ring in poly] for poly in region_polygons(region)]
        geometry = ({"type": "Polygon", "coordinates": polys[0]} if len(polys) == 1
                    else {"type": "MultiPolygon", "coordinates": polys})
        feats.append({"type": "Feature", "geometry": geometry,
                      "properties": {"objectType": "annotation", "name": f"IDC region {k}",
                                     "classification": {"name": "IDC", "color": IDC_COLOR},
                                     "measurements": {"tiles": int(region.sum()),
                                                      "mean_probability": round(float(np.mean(p)), 4),
                                                      "max_probability": round(float(np.max(p)), 4),
                                                      "area_mm2": round(float(region.sum()) * tile_mm2, 6)}}})
    return {"type": "FeatureCollection", "features": feats}


__all__ = ["feature_collection", "region_polygons", "signed_area", "trace_rings"]
