"""Atomic writes (edgecnn.fsutil): a writer that fails or is killed midway leaves the old file
(or none), never half a file; what it leaves is a dot-named temporary that listings skip."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgecnn.fsutil import atomic_path, dumps_strict, is_temp, read_json, sha256_file, write_bytes, write_json

OLD = b"the finished old file\n"


def _results(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not is_temp(p))


def test_write_replaces_whole_file_with_plain_permissions(tmp_path):
    target = tmp_path / "sub" / "model.tflite"
    write_bytes(target, OLD)
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and os.listdir(target.parent) == ["model.tflite"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask      # not mkstemp's 0600


def test_temporary_keeps_the_suffix_writers_pick_formats_from(tmp_path):
    with atomic_path(tmp_path / "basic_cnn-fp32.onnx") as tmp:
        assert tmp.suffix == ".onnx" and tmp.parent == tmp_path and is_temp(tmp)
        tmp.write_bytes(b"x")
    assert _results(tmp_path) == ["basic_cnn-fp32.onnx"]


def test_an_exception_midway_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_bytes(OLD)
    with pytest.raises(RuntimeError, match="converter died"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b'{"half": ')
            raise RuntimeError("converter died")
    assert target.read_bytes() == OLD and os.listdir(tmp_path) == ["metrics.json"]


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from edgecnn.fsutil import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half of a new model " * 5000)
            f.flush()
        print(tmp, flush=True)      # the temporary is on disk, the rename has not happened
        time.sleep(120)
""")


def _kill_a_writer(target: Path) -> tuple[subprocess.Popen, str]:
    """SIGKILL a process midway through writing ``target``; (the process, its temporary's name)."""
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        tmp_name = proc.stdout.readline().strip()
        assert tmp_name, "the writer did not start"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    return proc, tmp_name


@pytest.mark.parametrize("had_old", [True, False], ids=["over-old-file", "new-file"])
def test_a_writer_killed_midway_leaves_the_old_file_and_only_a_temporary(tmp_path, had_old):
    target = tmp_path / "basic_cnn-int8-qat.tflite"
    if had_old:
        target.write_bytes(OLD)
    proc, tmp_name = _kill_a_writer(target)
    assert proc.returncode == -signal.SIGKILL
    left = sorted(os.listdir(tmp_path))
    assert os.path.basename(tmp_name) in left                # SIGKILL runs no cleanup: the temporary stays
    assert all(is_temp(tmp_path / n) for n in left if n != target.name)
    if had_old:
        assert target.read_bytes() == OLD                    # untouched, not half-written
        assert _results(tmp_path) == [target.name]
    else:
        assert not target.exists() and _results(tmp_path) == []


def test_write_json_is_strict_json(tmp_path):
    path = write_json(tmp_path / "m.json", {"roc_auc": float("nan"), "ci": [float("-inf"), 0.5]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == read_json(path) == {"roc_auc": None, "ci": [None, 0.5]}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        dumps_strict({"x": object()})


def test_sha256_file_reads_in_chunks(tmp_path):
    data = os.urandom(3 * 1024 + 17)
    (tmp_path / "a.bin").write_bytes(data)
    assert sha256_file(tmp_path / "a.bin", chunk=1024) == hashlib.sha256(data).hexdigest()


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path):
    """A temporary names its writer's pid: the next write of the same target removes those whose
    writer is gone (killed), and leaves alone a running writer's and other targets'."""
    target = tmp_path / "model.keras"
    proc, orphan = _kill_a_writer(target)
    running = tmp_path / f".model.{os.getppid()}-abcd1234.keras"     # our parent runs: a live writer
    other = tmp_path / f".model.{proc.pid}-abcd1234.json"              # model.json's, not model.keras's
    for p in (running, other):
        p.write_bytes(b"x")
    assert os.path.exists(orphan) and str(proc.pid) in os.path.basename(orphan)
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and not os.path.exists(orphan)
    assert running.exists() and other.exists()
