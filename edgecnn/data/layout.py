"""Find the patch files of the Kaggle "Breast Histopathology Images" layout in a folder or zip.

The layout is ``<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<0|1>.png``. The Kaggle archive
holds it twice: at its root and again under ``IDC_regular_ps50_idx5/``; an unzipped download
may also put it one folder down. So patient folders are looked for at the root and one level
below, and each patch (patient, x, y, label) is kept once.

Nothing here decodes an image: listing is cheap so the cache key can be computed from it.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

KAGGLE_DATASET = "paultimothymooney/breast-histopathology-images"
KAGGLE_URL = f"https://www.kaggle.com/datasets/{KAGGLE_DATASET}"
EXPECTED_LAYOUT = "<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<0|1>.png"

PATCH_RE = re.compile(r"^(?P<patient>[^_/\\]+)_idx5_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>[01])\.png$", re.I)

# Files every OS or archiver sprinkles around; they are counted but never reported as problems.
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "readme.txt", "readme.md", "license", "license.txt"}
_JUNK_DIRS = {"__macosx", ".git", ".ipynb_checkpoints"}


class DataError(ValueError):
    """Bad or missing input data; the message names the file and what to do about it."""


def layout_help(path: str | os.PathLike) -> str:
    return (
        f"Expected the Kaggle 'Breast Histopathology Images' layout under {path}:\n"
        f"    {EXPECTED_LAYOUT}\n"
        "as a folder, a folder holding it one level down (e.g. IDC_regular_ps50_idx5/), or the Kaggle zip.\n"
        f"Get the data from {KAGGLE_URL} (kagglehub id '{KAGGLE_DATASET}'),\n"
        "or make a small synthetic stand-in with `edgecnn data synth OUT`."
    )


@dataclass(frozen=True)
class PatchFile:
    """One patch file: ``name`` is the path relative to the folder root, or the zip member name."""

    name: str
    patient: str
    x: int
    y: int
    label: int
    size: int
    stamp: int  # mtime in ns for folders, CRC32 for zip members: what changes when the file does

    @property
    def key(self) -> tuple[str, int, int, int]:
        return (self.patient, self.x, self.y, self.label)


@dataclass
class Listing:
    """What a folder or zip holds, before any image is decoded."""

    source: Path
    is_zip: bool
    files: list[PatchFile] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)     # {"file", "reason"}
    n_ignored: int = 0                                   # .DS_Store, README, __MACOSX, ...
    duplicates_ignored: int = 0
    fingerprint_lines: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """sha256 over every listed name, size and stamp (sorted), so any change to the data shows."""
        h = hashlib.sha256()
        for line in sorted(self.fingerprint_lines):
            h.update(line.encode("utf-8", "surrogateescape"))
            h.update(b"\n")
        return h.hexdigest()


def parse_patch_name(filename: str) -> tuple[str, int, int, int] | None:
    """``10253_idx5_x1001_y1251_class0.png`` -> ("10253", 1001, 1251, 0); None if it does not match."""
    m = PATCH_RE.match(filename)
    if not m:
        return None
    return m["patient"], int(m["x"]), int(m["y"]), int(m["label"])


def is_junk(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(p.lower() in _JUNK_DIRS for p in parts[:-1]) or (
        bool(parts) and (parts[-1].startswith(".") or parts[-1].lower() in _JUNK_NAMES)
    )


def classify(rel: str, listing: Listing, strict: bool) -> tuple[str, int, int, int] | None:
    """Check a file's place in the layout; record why it is skipped (or raise under ``strict``)."""
    parts = PurePosixPath(rel).parts
    if is_junk(rel):
        listing.n_ignored += 1
        return None
    if len(parts) < 3 or parts[-2] not in ("0", "1"):
        return _skip(listing, rel, f"not in the {EXPECTED_LAYOUT} layout", strict)
    parsed = parse_patch_name(parts[-1])
    if parsed is None:
        return _skip(listing, rel, "file name does not match <patient>_idx5_x<X>_y<Y>_class<0|1>.png", strict)
    patient, x, y, label = parsed
    if str(label) != parts[-2]:
        return _skip(listing, rel, f"label mismatch: folder says {parts[-2]}, name says class{label}", strict)
    if parts[-3] != patient:
        return _skip(listing, rel, f"patient mismatch: folder {parts[-3]!r}, name {patient!r}", strict)
    return parsed


def _skip(listing: Listing, rel: str, reason: str, strict: bool) -> None:
    if strict:
        raise DataError(f"{listing.source / rel}: {reason} (strict mode; fix or remove the file, or run without --strict)")
    listing.skipped.append({"file": rel, "reason": reason})
    return None


def list_patches(path: str | os.PathLike, strict: bool = False) -> Listing:
    """List the patch files under ``path`` (folder or .zip), deduplicated, in a stable order."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"data path {path} does not exist.\n" + layout_help(path))
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path} is a file but not a zip archive.\n" + layout_help(path))
        listing = _list_zip(path, strict)
    else:
        listing = _list_folder(path, strict)
    _dedupe(listing)
    return listing


def _dedupe(listing: Listing) -> None:
    # The shallowest copy wins (the archive root rather than IDC_regular_ps50_idx5/), then by name.
    listing.files.sort(key=lambda f: (f.name.count("/"), f.name))
    seen: set[tuple] = set()
    unique = []
    for f in listing.files:
        if f.key in seen:
            listing.duplicates_ignored += 1
            continue
        seen.add(f.key)
        unique.append(f)
    unique.sort(key=lambda f: (f.patient, f.label, f.y, f.x))
    listing.files = unique


def _looks_like_patient_dir(path: Path) -> bool:
    return (path / "0").is_dir() or (path / "1").is_dir()


def _list_folder(root: Path, strict: bool) -> Listing:
    listing = Listing(source=root, is_zip=False)
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir():
            if entry.name.lower() in _JUNK_DIRS or entry.name.startswith("."):
                continue
            if _looks_like_patient_dir(Path(entry.path)):
                _scan_patient(root, Path(entry.path), listing, strict)
            else:
                # A container one level down (IDC_regular_ps50_idx5/, an unzipped archive folder).
                for sub in sorted(os.scandir(entry.path), key=lambda e: e.name):
                    if sub.is_dir() and _looks_like_patient_dir(Path(sub.path)):
                        _scan_patient(root, Path(sub.path), listing, strict)
        elif entry.is_file():
            # Stray files at the root (README, a split file) are not patches; count, don't complain.
            listing.n_ignored += 1
    return listing


def _scan_patient(root: Path, patient_dir: Path, listing: Listing, strict: bool) -> None:
    for label_entry in sorted(os.scandir(patient_dir), key=lambda e: e.name):
        rel_dir = os.path.relpath(label_entry.path, root).replace(os.sep, "/")
        if not label_entry.is_dir():
            if not is_junk(rel_dir):
                _skip(listing, rel_dir, f"not in the {EXPECTED_LAYOUT} layout", strict)
            else:
                listing.n_ignored += 1
            continue
        for e in os.scandir(label_entry.path):
            if not e.is_file():
                continue
            rel = f"{rel_dir}/{e.name}"
            st = e.stat()
            listing.fingerprint_lines.append(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}")
            parsed = classify(rel, listing, strict)
            if parsed is not None:
                listing.files.append(PatchFile(rel, *parsed, size=st.st_size, stamp=st.st_mtime_ns))


def _list_zip(path: Path, strict: bool) -> Listing:
    listing = Listing(source=path, is_zip=True)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:   # ValueError: a name not the UTF-8 it claims
        raise DataError(f"{path}: cannot read the zip ({type(e).__name__}: {e}); download it again.") from e
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename
        parts = PurePosixPath(name).parts
        # Patient folders live at the root or one level down; anything deeper is not the layout.
        if len(parts) > 4:
            if is_junk(name):
                listing.n_ignored += 1
            else:
                _skip(listing, name, f"not in the {EXPECTED_LAYOUT} layout", strict)
            continue
        listing.fingerprint_lines.append(f"{name}\t{info.file_size}\t{info.CRC}")
        if len(parts) == 1:
            listing.n_ignored += 1  # stray root file, as for folders
            continue
        parsed = classify(name, listing, strict)
        if parsed is not None:
            listing.files.append(PatchFile(name, *parsed, size=info.file_size, stamp=info.CRC))
    st = path.stat()
    # The zip's own size and mtime make a re-downloaded archive a new key even if members match.
    listing.fingerprint_lines.append(f"<zip>\t{st.st_size}\t{st.st_mtime_ns}")
    return listing
