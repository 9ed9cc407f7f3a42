"""``load_patches``: the Kaggle layout (folder or zip) -> a ``PatchSet`` of uint8 RGB patches."""

from __future__ import annotations

import os
import time
import zipfile
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecnn import PATCH_SIZE
from edgecnn.data import cache as _cache
from edgecnn.data.decode import BORDER_RULES, decode_patch
from edgecnn.data.layout import DataError, Listing, PatchFile, layout_help, list_patches
from edgecnn.data.patchset import PatchSet
from edgecnn.data.sources import merge_patchsets, parse_sources

_CHUNK = 256  # files per thread-pool task: amortises scheduling, keeps results in order
# What reading a zip member can raise beyond OSError: a damaged member or directory, a bad deflate
# stream, an encrypted member (RuntimeError), a compression method zipfile lacks, a cut stream, a
# local header whose name is not the UTF-8 its flag says (UnicodeDecodeError, a ValueError).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError, ValueError)


def max_patch_bytes(patch_size: int = PATCH_SIZE) -> int:
    """The most bytes a patch file may take: a PNG of 16-bit RGBA stored without compression
    (the largest a patch's pixels can be) plus 1 MiB of metadata. The real patches are < 8 KB.
    A bigger file, or a zip member declaring more, is skipped unread: a zip bomb (a few hundred
    KB inflating to gigabytes) is never inflated."""
    return patch_size * (8 * patch_size + 1) + (1 << 20)


def load_patches(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    border: str = "pad",
    strict: bool = False,
    cache: bool = True,
    progress: bool = False,
    patch_size: int = PATCH_SIZE,
    workers: int | None = None,
) -> PatchSet:
    """Read the Kaggle IDC layout from a folder or the Kaggle zip.

    Bad files are skipped and listed in ``report["skipped"]`` ({"file", "reason"}), or raise
    ``DataError`` when ``strict``. Border patches smaller than ``patch_size`` are padded with
    white or dropped (``border``; see ``edgecnn.data.decode``). Decoded patches are cached
    under ``cache_dir()/patches/<key>/`` and memory-mapped on the next call.

    ``path`` may name several sources (a sequence, or one string separated by ``os.pathsep``):
    each is read and cached on its own, then merged (``edgecnn.data.sources``).
    """
    if border not in BORDER_RULES:
        raise ValueError(f"border must be one of {BORDER_RULES}, not {border!r}")
    paths = parse_sources(path)
    if len(paths) > 1:
        return merge_patchsets([load_patches(p, border, strict, cache, progress, patch_size, workers) for p in paths])
    path = paths[0]
    listing = _list(path, strict, progress)
    key = _cache.cache_key(listing.fingerprint(), border, patch_size)
    hit = _from_cache(key, path, strict) if cache else None
    if hit is not None:
        return hit
    if not cache:
        return _decode_source(path, listing, key, border, patch_size, strict, cache, progress, workers)
    with _cache.building(key):
        # Another process may have published this entry while we waited for the lock.
        hit = _from_cache(key, path, strict)
        if hit is not None:
            return hit
        return _decode_source(path, listing, key, border, patch_size, strict, cache, progress, workers)


def _list(path: Path, strict: bool, progress: bool) -> Listing:
    if progress:
        from rich.console import Console

        with Console(stderr=True).status(f"listing patch files in {path} ..."):
            listing = list_patches(path, strict=strict)
    else:
        listing = list_patches(path, strict=strict)
    if not listing.files:
        raise DataError(_nothing_found(path, listing.skipped))
    return listing


def _from_cache(key: str, path: Path, strict: bool) -> PatchSet | None:
    hit = _cache.load(key)
    if hit is None:
        return None
    arrays, report = hit
    report = _restore_report(report, path, key)
    if strict and report["n_skipped"]:
        first = report["skipped"][0]
        raise DataError(f"{path / first['file']}: {first['reason']} (strict mode; fix or remove the file)")
    return PatchSet(report=report, **arrays)


def _decode_source(path: Path, listing: Listing, key: str, border: str, patch_size: int, strict: bool,
                   cache: bool, progress: bool, workers: int | None) -> PatchSet:
    """Decode every listed file into the cache (written atomically: an interrupted run leaves none)."""
    t0 = time.perf_counter()
    writer = _cache.CacheWriter(key, len(listing.files), patch_size) if cache else None
    out = writer.images if writer else np.empty((len(listing.files), patch_size, patch_size, 3), np.uint8)
    try:
        kept, stats = _decode_all(listing, out, border, patch_size, strict, progress, workers)
        files = [listing.files[i] for i in kept]
        if not files:
            raise DataError(_nothing_found(path, listing.skipped + stats["skipped"]))
    except BaseException:
        if writer:
            writer.abort()
        raise
    arrays = _columns(files)
    report = _make_report(path, listing, files, stats, border, patch_size, key)
    report["decode_seconds"] = round(time.perf_counter() - t0, 3)
    if writer:
        final = writer.commit(len(files), arrays, report)
        images = np.load(final / "images.npy", mmap_mode="r")
    else:
        images = out[: len(files)]
    return PatchSet(images=images, report=dict(report, from_cache=False), **arrays)


def _columns(files: list[PatchFile]) -> dict[str, np.ndarray]:
    return {
        "labels": np.array([f.label for f in files], dtype=np.int8),
        "patients": np.array([f.patient for f in files], dtype=str),
        "xs": np.array([f.x for f in files], dtype=np.int32),
        "ys": np.array([f.y for f in files], dtype=np.int32),
        "files": np.array([f.name for f in files], dtype=str),
    }


def _decode_all(listing: Listing, out: np.ndarray, border: str, patch_size: int, strict: bool,
                progress: bool, workers: int | None) -> tuple[list[int], dict[str, Any]]:
    """Decode in a thread pool (zlib and PIL release the GIL); write kept rows in listing order."""
    files = listing.files
    zf = zipfile.ZipFile(listing.source) if listing.is_zip else None
    root = listing.source
    limit = max_patch_bytes(patch_size)

    def read(f: PatchFile) -> bytes:
        if zf is not None:
            # Never zf.read(): it inflates the whole stream before cutting it to the declared
            # size, so a member declaring 5 KB can still inflate 1 GB. A bounded read ends at
            # the declared size, and a stream longer than that fails its CRC (BadZipFile).
            with zf.open(f.name) as member:   # ZipFile serialises member reads internally
                return member.read(limit + 1)
        with open(root / f.name, "rb") as fh:
            return fh.read(limit + 1)

    def work(start: int) -> list:
        res = []
        for f in files[start : start + _CHUNK]:
            if f.size > limit:           # the listing's size: st_size, or the member's declared size
                res.append((None, _too_big(f.size, limit, patch_size, zf is not None)))
                continue
            try:
                data = read(f)
            except OSError as e:
                res.append((None, f"cannot read ({e.strerror or e})"))
                continue
            except _ZIP_ERRORS as e:
                res.append((None, f"damaged zip member ({type(e).__name__}: {e})"))
                continue
            if len(data) > limit:        # grew after listing
                res.append((None, _too_big(len(data), limit, patch_size, zf is not None)))
                continue
            d = decode_patch(data, patch_size, border)
            res.append((d, d.reason))
        return res

    n_workers = workers or min(8, 2 * (os.cpu_count() or 2))
    kept: list[int] = []
    stats: dict[str, Any] = {"sizes": Counter(), "padded": 0, "dropped": 0, "smaller": 0, "skipped": []}
    bar = _decode_bar(len(files), progress)
    try:
        with bar, ThreadPoolExecutor(max_workers=n_workers) as pool:
            for ci, chunk in enumerate(pool.map(work, range(0, len(files), _CHUNK))):
                for j, (d, reason) in enumerate(chunk):
                    i = ci * _CHUNK + j
                    if _keep(d, reason, root, files[i].name, strict, stats):
                        out[len(kept)] = d.image
                        kept.append(i)
                bar.advance(len(chunk))
    finally:
        if zf is not None:
            zf.close()
    return kept, stats


def _too_big(size: int, limit: int, patch_size: int, zipped: bool) -> str:
    size_is = f"declares {size:,} bytes uncompressed" if zipped else f"{size:,} bytes"
    return (f"too large: {size_is}, more than a {patch_size}x{patch_size} patch file can be ({limit:,} bytes); "
            f"not {'decompressed' if zipped else 'read'}")


def _keep(d, reason: str | None, root: Path, name: str, strict: bool, stats: dict[str, Any]) -> bool:
    """Count one decoded file into ``stats``; True when its image joins the set."""
    if reason is not None:
        if strict:
            raise DataError(f"{root / name}: {reason} (strict mode; fix or remove the file)")
        stats["skipped"].append({"file": name, "reason": reason})
        return False
    stats["sizes"][f"{d.width}x{d.height}"] += 1
    if d.padded or d.dropped:
        stats["smaller"] += 1
    if d.dropped:
        stats["dropped"] += 1
        return False
    stats["padded"] += int(d.padded)
    return True


def _decode_bar(total: int, enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from edgecnn.progress import Bar

    return Bar(TextColumn("decoding patches"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               total=total, enabled=enabled, console=Console(stderr=True), transient=False)


def _make_report(path: Path, listing: Listing, files: list[PatchFile], stats: dict, border: str,
                 patch_size: int, key: str) -> dict[str, Any]:
    skipped = listing.skipped + stats["skipped"]
    labels = Counter(f.label for f in files)
    full = f"{patch_size}x{patch_size}"
    return {
        "source": str(path),
        "format": "zip" if listing.is_zip else "folder",
        "n_files": len(listing.files) + len(listing.skipped),
        "n_patches": len(files),
        "n_patients": len({f.patient for f in files}),
        "class_counts": {0: labels.get(0, 0), 1: labels.get(1, 0)},
        "patch_size": patch_size,
        "border": {"rule": border, "smaller": stats["smaller"], "padded": stats["padded"], "dropped": stats["dropped"]},
        "sizes": {full: stats["sizes"].get(full, 0), "smaller": stats["smaller"]},
        "size_histogram": dict(sorted(stats["sizes"].items(), key=lambda kv: (-kv[1], kv[0]))),
        "skipped": skipped,
        "n_skipped": len(skipped),
        "skipped_by_reason": dict(Counter(_reason_kind(s["reason"]) for s in skipped)),
        "duplicates_ignored": listing.duplicates_ignored,
        "n_ignored": listing.n_ignored,
        "cache_key": key,
        "from_cache": False,
    }


def _reason_kind(reason: str) -> str:
    for prefix, kind in (("empty", "empty"), ("not an image", "not_image"), ("unreadable", "unreadable"),
                         ("cannot read", "unreadable"), ("damaged zip member", "unreadable"),
                         ("too large", "too_large"), ("label mismatch", "label_mismatch"),
                         ("patient mismatch", "patient_mismatch"), ("file name", "bad_name"),
                         ("not in the", "bad_place")):
        if reason.startswith(prefix):
            return kind
    return "too_large" if "larger than" in reason else "other"


def _restore_report(report: dict[str, Any], path: Path, key: str) -> dict[str, Any]:
    # JSON turned the int class keys into strings; the source may be another copy of the same data.
    report = dict(report)
    report["class_counts"] = {int(k): int(v) for k, v in report["class_counts"].items()}
    report["source"] = str(path)
    report["cache_key"] = key
    report["from_cache"] = True
    return report


def _nothing_found(path: Path, skipped: list[dict]) -> str:
    msg = f"No IDC patches could be loaded from {path}."
    if skipped:
        msg += f" {len(skipped)} file(s) were skipped, e.g. {skipped[0]['file']}: {skipped[0]['reason']}."
    return msg + "\n" + layout_help(path)
