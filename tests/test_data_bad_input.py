"""Bad input: odd PNG modes, broken files, wrong names/labels, empty or wrong folders, strict mode."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.data import EXPECTED_LAYOUT, KAGGLE_DATASET, DataError, load_patches
from edgecnn.data.decode import decode_patch


def _name(pid: str, x: int, y: int, label: int) -> str:
    return f"{pid}/{label}/{pid}_idx5_x{x}_y{y}_class{label}.png"


def _save(root: Path, rel: str, im: Image.Image) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    im.save(p)
    return p


@pytest.fixture()
def messy(idc_data, tmp_path) -> Path:
    """One real patient plus every kind of trouble the loader must survive."""
    root = tmp_path / "messy"
    pid = sorted(p.name for p in idc_data.iterdir())[0]
    shutil.copytree(idc_data / pid, root / pid)
    _save(root, _name("777", 1, 1, 0), Image.new("L", (50, 50), 120))                      # grayscale
    _save(root, _name("777", 51, 1, 0), Image.new("RGBA", (50, 50), (200, 10, 10, 0)))     # fully transparent
    _save(root, _name("777", 101, 1, 1), Image.new("RGBA", (50, 50), (200, 10, 10, 255)))  # opaque RGBA
    pal = Image.new("P", (50, 50), 0)
    pal.putpalette([30, 60, 90] + [0] * 765)
    _save(root, _name("777", 151, 1, 1), pal)                                              # palette
    (root / _name("777", 201, 1, 0)).write_bytes(b"")                                      # 0-byte
    (root / _name("777", 251, 1, 0)).write_text("this is a text file, not a PNG\n")        # .txt renamed
    good = Image.new("RGB", (50, 50), (1, 2, 3))
    good.save(root / "777/0/tmp.png")
    (root / "777/0/tmp.png").replace(root / "777/0/777_idx5_x301_y1_class1.png")           # label mismatch
    good.save(root / "777/1/notes.png")                                                    # bad name
    _save(root, _name("777", 351, 1, 0), Image.new("RGB", (64, 64), (5, 5, 5)))            # too large
    data = (root / _name("777", 1, 1, 0)).read_bytes()
    (root / _name("777", 401, 1, 0)).write_bytes(data[: len(data) // 2])                   # truncated
    (root / "777/0/.DS_Store").write_bytes(b"\0junk")                                      # junk: ignored
    (root / "README.txt").write_text("notes")
    return root


def test_messy_folder_skips_and_lists(messy):
    ps = load_patches(messy, cache=False)
    r = ps.report
    reasons = {s["file"]: s["reason"] for s in r["skipped"]}
    assert reasons[_name("777", 201, 1, 0)] == "empty file (0 bytes)"
    assert reasons[_name("777", 251, 1, 0)].startswith("not an image")
    assert reasons["777/0/777_idx5_x301_y1_class1.png"].startswith("label mismatch")
    assert reasons["777/1/notes.png"].startswith("file name does not match")
    assert "larger than" in reasons[_name("777", 351, 1, 0)]
    assert reasons[_name("777", 401, 1, 0)].startswith("unreadable")
    assert r["n_skipped"] == len(r["skipped"]) == 6
    assert not any(".DS_Store" in s["file"] or "README" in s["file"] for s in r["skipped"])
    assert r["n_ignored"] == 2
    assert r["n_files"] == r["n_patches"] + r["n_skipped"] + r["border"]["dropped"]
    assert r["skipped_by_reason"] == {"empty": 1, "not_image": 1, "label_mismatch": 1, "bad_name": 1,
                                      "too_large": 1, "unreadable": 1}

    def img(x, y, label):
        return ps.images[list(ps.files).index(_name("777", x, y, label))]

    assert (img(1, 1, 0) == 120).all()                      # gray -> RGB, same value per channel
    assert (img(51, 1, 0) == 255).all()                     # transparent -> white background
    assert (img(101, 1, 1) == (200, 10, 10)).all()
    assert (img(151, 1, 1) == (30, 60, 90)).all()
    assert ps.images.shape[1:] == (50, 50, 3)


def test_messy_folder_through_cache_keeps_report(messy):
    first = load_patches(messy)
    again = load_patches(messy)
    assert again.report["from_cache"] and again.report["skipped"] == first.report["skipped"]
    with pytest.raises(DataError, match="strict"):
        load_patches(messy, strict=True)  # a cached set with skips must still fail under strict


@pytest.mark.parametrize("bad", ["empty", "text", "mismatch"])
def test_strict_raises_naming_the_file(idc_data, tmp_path, bad):
    root = tmp_path / "d"
    pid = sorted(p.name for p in idc_data.iterdir())[0]
    shutil.copytree(idc_data / pid, root / pid)
    target = root / _name(pid, 99999, 1, 0)
    if bad == "empty":
        target.write_bytes(b"")
    elif bad == "text":
        target.write_text("hello")
    else:
        target = root / pid / "0" / f"{pid}_idx5_x99999_y1_class1.png"
        Image.new("RGB", (50, 50)).save(target)
    with pytest.raises(DataError) as e:
        load_patches(root, strict=True, cache=False)
    assert target.name in str(e.value) and "strict" in str(e.value)
    assert len(load_patches(root, cache=False).report["skipped"]) == 1


def _assert_helpful(msg: str):
    assert EXPECTED_LAYOUT in msg
    assert KAGGLE_DATASET in msg
    assert "edgecnn data synth" in msg


def test_empty_folder(tmp_path):
    with pytest.raises(DataError) as e:
        load_patches(tmp_path)
    assert str(tmp_path) in str(e.value)
    _assert_helpful(str(e.value))


def test_wrong_folder(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (50, 50)).save(tmp_path / "images" / "a.png")
    Image.new("RGB", (50, 50)).save(tmp_path / "b.png")
    with pytest.raises(DataError) as e:
        load_patches(tmp_path)
    _assert_helpful(str(e.value))


def test_only_bad_files_names_one(tmp_path):
    (tmp_path / "5" / "0").mkdir(parents=True)
    (tmp_path / "5" / "0" / "5_idx5_x1_y1_class0.png").write_bytes(b"")
    with pytest.raises(DataError) as e:
        load_patches(tmp_path)
    assert "5_idx5_x1_y1_class0.png" in str(e.value) and "empty" in str(e.value)


def test_missing_path_and_non_zip_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_patches(tmp_path / "nope")
    f = tmp_path / "data.tar"
    f.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a zip"):
        load_patches(f)


def test_empty_zip(tmp_path):
    z = tmp_path / "e.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "x")
    with pytest.raises(DataError) as e:
        load_patches(z)
    _assert_helpful(str(e.value))


def test_decode_patch_border_rules():
    import io

    buf = io.BytesIO()
    Image.new("RGB", (50, 20), (9, 9, 9)).save(buf, format="PNG")
    padded = decode_patch(buf.getvalue(), 50, "pad")
    assert padded.padded and (padded.image[:20] == 9).all() and (padded.image[20:] == 255).all()
    dropped = decode_patch(buf.getvalue(), 50, "drop")
    assert dropped.dropped and dropped.image is None and dropped.reason is None
    with pytest.raises(ValueError):
        decode_patch(buf.getvalue(), 50, "crop")


def test_sixteen_bit_grayscale(tmp_path):
    root = tmp_path / "d"
    p = root / _name("1", 1, 1, 0)
    p.parent.mkdir(parents=True)
    Image.fromarray(np.full((50, 50), 65535, np.uint16)).save(p)
    ps = load_patches(root, cache=False)
    assert (ps.images == 255).all()


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    """A ~100 KB PNG that declares 20000×20000 px (1.2 GB as RGB), in a data folder and in a zip:
    skipped as too large before any pixel is decoded (peak RSS of the whole command < 300 MB)."""
    import subprocess
    import sys

    root = tmp_path / "data" / "777" / "0"
    root.mkdir(parents=True)
    bomb = root / "777_idx5_x1_y1_class0.png"
    Image.new("1", (20000, 20000)).save(bomb, optimize=True)
    assert bomb.stat().st_size < 200_000
    d = decode_patch(bomb.read_bytes())
    assert d.image is None and "larger than the 50x50" in d.reason
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w") as z:
        z.write(bomb, "777/0/" + bomb.name)
    for src in (tmp_path / "data", tmp_path / "bomb.zip"):
        # VmHWM, not ru_maxrss: the latter keeps the forking test process's peak across exec.
        code = ("import sys\nfrom edgecnn.data import load_patches\n"
                "try:\n    load_patches(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
                "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n")
        r = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, timeout=300,
                           env={**__import__("os").environ, "EDGECNN_CACHE": str(tmp_path / "cache")})
        assert r.returncode == 0, r.stderr
        said, peak_kb = r.stdout.rsplit("\n", 2)[-3], int(r.stdout.split()[-1])
        assert "777_idx5_x1_y1_class0.png" in said and "larger than" in said, said
        assert peak_kb < 300 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"


def _declare_size(zip_path: Path, member: str, size: int) -> None:
    """Patch a member's uncompressed size in its central-directory record and its local header,
    leaving its data alone: a zip that lies about (or tells the truth about) a huge member."""
    import struct

    raw = bytearray(zip_path.read_bytes())
    name = member.encode()
    cd = raw.find(b"PK\x01\x02")
    while cd != -1:
        n_len = struct.unpack_from("<H", raw, cd + 28)[0]
        if raw[cd + 46:cd + 46 + n_len] == name:
            local = struct.unpack_from("<I", raw, cd + 42)[0]
            struct.pack_into("<I", raw, cd + 24, size)
            struct.pack_into("<I", raw, local + 22, size)
            zip_path.write_bytes(bytes(raw))
            return
        cd = raw.find(b"PK\x01\x02", cd + 4)
    raise AssertionError(f"{member} not in {zip_path}")


def test_huge_zip_members_are_refused_unread(idc_data, tmp_path):
    """A Kaggle zip holding one real patient and three hostile members named like patches: one whose
    headers declare 4 GB uncompressed, a 400 MB bomb that declares its size (2 MB in the zip), and
    the same bomb declaring 6 KB. None is inflated past its limit: each is skipped naming the file
    (declared too large, or damaged: its stream outruns the size it declared), the real patches
    load, and the whole process peaks under 300 MB. A 4 GB file in a data folder is refused too."""
    import os
    import subprocess
    import sys

    pid = sorted(p.name for p in idc_data.iterdir())[0]
    real = sorted((idc_data / pid).rglob("*.png"))
    z = tmp_path / "hostile.zip"
    names = {"declared": _name("777", 1, 1, 0), "bomb": _name("777", 51, 1, 0), "liar": _name("777", 101, 1, 0)}
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in real:
            zf.write(p, p.relative_to(idc_data).as_posix())
        zf.write(real[0], names["declared"])
        for key in ("bomb", "liar"):
            info = zipfile.ZipInfo(names[key])
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as m:          # a PNG signature, then 400 MB of zeros: ~2 MB deflated
                m.write(b"\x89PNG\r\n\x1a\n")
                zeros = bytes(1 << 20)
                for _ in range(400):
                    m.write(zeros)
    assert z.stat().st_size < 10_000_000                      # 800 MB of bombs in ~4 MB
    _declare_size(z, names["declared"], 4_000_000_000)
    _declare_size(z, names["liar"], 6_000)
    folder = tmp_path / "data"
    shutil.copytree(idc_data / pid, folder / pid)
    big = folder / _name("777", 1, 1, 0)
    big.parent.mkdir(parents=True)
    with open(big, "wb") as f:
        f.truncate(4 * 1024 ** 3)                             # sparse: 4 GB declared by the file system
    code = ("import json, sys\nfrom edgecnn.data import load_patches\nps = load_patches(sys.argv[1])\n"
            "print(json.dumps({'n': len(ps), 'skipped': ps.report['skipped'], 'kinds': ps.report['skipped_by_reason']}))\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n")
    for src, hostile in ((z, names), (folder, {"declared": _name("777", 1, 1, 0)})):
        r = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "EDGECNN_CACHE": str(tmp_path / "cache")})
        assert r.returncode == 0, r.stderr
        out, peak_kb = json.loads(r.stdout.splitlines()[-2]), int(r.stdout.split()[-1])
        assert out["n"] == len(real) and peak_kb < 300 * 1024, (out["n"], f"peak RSS {peak_kb / 1024:.0f} MB")
        why = {s["file"]: s["reason"] for s in out["skipped"]}
        assert set(why) == set(hostile.values()), why
        assert why[hostile["declared"]].startswith("too large: ")
        assert why[hostile["declared"]].endswith("not decompressed" if src == z else "not read")
        if "bomb" in hostile:
            assert "declares 419,430,408 bytes uncompressed" in why[hostile["bomb"]]
            assert why[hostile["liar"]].startswith("damaged zip member") and "CRC" in why[hostile["liar"]]
            assert out["kinds"] == {"too_large": 2, "unreadable": 1}
    with pytest.raises(DataError, match=r"777_idx5_x1_y1_class0\.png: too large"):   # --strict names it
        load_patches(z, strict=True, cache=False)
