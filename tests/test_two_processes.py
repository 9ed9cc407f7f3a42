"""Two edgecnn processes at once on the same thing, for real (subprocesses started together):
the same patch-cache key (`data info` on an empty cache), the same export folder, the same scan
output folder. Nothing is ever half-written; the second process waits, saying for whom, or is
refused, saying why (docs/reliability.md, "Two processes at once")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RELEASE_MODEL = ROOT / "exported" / "release" / "basic_cnn-int8-qat.tflite"
CLI = [sys.executable, "-m", "edgecnn.cli"]
VOLATILE = {"decode_seconds", "from_cache"}


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "EDGECNN_DEVICE_PROFILE": "/nonexistent/profile.json", **extra}


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    fh = open(log, "w")
    p = subprocess.Popen(CLI + args, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    fh.close()          # the child has its own copy
    return p


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until ``text`` shows in the process's output (or it ended without it: fail with its output)."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{text!r} never printed; output:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)


# --- the patch cache --------------------------------------------------------------------------

def test_two_processes_fill_one_cache_entry_once(idc_data, tmp_path):
    """Two `data info` on an empty cache, started together: one decodes, the other waits and reads
    its entry; both report the same data; the cache holds one whole entry and no leftovers."""
    cache = tmp_path / "cache"
    env = _env(EDGECNN_CACHE=str(cache))
    procs = [_start(["data", "info", str(idc_data), "--json", str(tmp_path / f"info{i}.json"), "-q"], env,
                    tmp_path / f"log{i}") for i in range(2)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0], [(tmp_path / f"log{i}").read_text()[-1500:] for i in range(2)]
    infos = [json.loads((tmp_path / f"info{i}.json").read_text()) for i in range(2)]
    assert sorted(i["from_cache"] for i in infos) == [False, True]      # decoded once, not twice
    same = [{k: v for k, v in i.items() if k not in VOLATILE} for i in infos]
    assert same[0] == same[1] and infos[0]["n_patches"] == 12057
    assert sorted(p.name for p in (cache / "patches").iterdir()) == [infos[0]["cache_key"]]   # no .tmp-, no .lock-
    again = subprocess.run(CLI + ["data", "info", str(idc_data), "--json", "-", "-q"], env=env, capture_output=True,
                           text=True, cwd=ROOT)
    assert json.loads(again.stdout)["from_cache"] is True                # the entry left behind is whole


def test_cache_waiter_says_for_whom_then_goes_on(idc_data, tmp_path, monkeypatch):
    """While another process holds the key's lock, `data info` says it is waiting and for which
    process; when the lock is released (here by this test, standing in for a killed builder that
    published nothing) it builds the entry itself."""
    from edgecnn.data import cache
    from edgecnn.data.layout import list_patches
    from edgecnn.fsutil import exclusive

    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "cache"))
    key = cache.cache_key(list_patches(idc_data).fingerprint(), "pad", 50)
    log = tmp_path / "log"
    with exclusive(cache.patches_root() / f".lock-{key}"):
        p = _start(["data", "info", str(idc_data), "--json", str(tmp_path / "info.json"), "-q"],
                   _env(EDGECNN_CACHE=str(tmp_path / "cache")), log)
        _wait_for(log, f"waiting for process {os.getpid()}", p)
        assert p.poll() is None                                  # it waits; it does not decode beside us
    assert p.wait(timeout=600) == 0, log.read_text()[-1500:]
    assert "patch cache" in log.read_text()
    assert json.loads((tmp_path / "info.json").read_text())["from_cache"] is False


def test_lock_is_dropped_when_its_holder_is_killed(tmp_path):
    """flock: a SIGKILLed holder never leaves the lock held."""
    from edgecnn.fsutil import exclusive

    lock = tmp_path / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from edgecnn.fsutil import exclusive\n"
                               f"with exclusive({str(lock)!r}):\n    print('held', flush=True); time.sleep(600)"],
                              env=_env(), stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "held"
    waited = []
    holder.kill()
    holder.wait()
    with exclusive(lock, on_wait=waited.append):
        assert lock.read_text() == str(os.getpid())
    assert waited == [] and not lock.exists()        # taken at once, removed on release


# --- one export folder ------------------------------------------------------------------------

def test_two_exports_into_one_folder(export_run, tmp_path):
    """Two `export` into one --out, started together: one writes the artifact, the other waits and
    is refused as if it had come later (no --force); the folder holds one artifact and its own
    manifest, which verify. A third, started while the lock is held, says for whom it waits."""
    from edgecnn.export.api import out_lock
    from edgecnn.fsutil import exclusive
    from edgecnn.manifest import read_manifest, verify_artifact

    out = tmp_path / "out"
    args = ["export", str(export_run.path), "--format", "tflite", "--precision", "fp32", "--limit", "60",
            "--out", str(out), "-q"]
    procs = [_start(args, _env(), tmp_path / f"log{i}") for i in range(2)]
    codes = [p.wait(timeout=900) for p in procs]
    logs = [(tmp_path / f"log{i}").read_text() for i in range(2)]
    assert sorted(codes) == [0, 2], logs
    refused = logs[codes.index(2)]
    assert "already exist" in refused and "--force" in refused, refused
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2 and names[1] == names[0] + ".json"
    verify_artifact(out / names[0], read_manifest(out / names[0]))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no staging folder, no lock

    log = tmp_path / "log-third"
    with exclusive(out_lock(out)):
        third = _start(args, _env(), log)
        _wait_for(log, f"waiting for process {os.getpid()}", third)
    assert third.wait(timeout=600) == 2 and "already exist" in log.read_text()


# --- one scan output folder -------------------------------------------------------------------

def test_two_scans_into_one_folder_never_show_half_a_file(tmp_path):
    """Two `scan` of the same frames into one --out: every overlay is written under a temporary
    name and renamed, so a reader watching the folder meanwhile (a viewer, a sync tool) never
    opens half a PNG, and the outputs at the end equal a lone scan's."""
    from PIL import Image

    from edgecnn.fsutil import is_temp

    field = Image.open(ROOT / "examples" / "field-14082.png").convert("RGB")
    frames = []
    for i in range(6):
        path = tmp_path / "in" / f"f{i}.png"
        path.parent.mkdir(exist_ok=True)
        field.crop((100 * i, 40 * i, 100 * i + 960, 40 * i + 540)).save(path)
        frames.append(str(path))
    scan = ["scan", *frames, "--model", str(RELEASE_MODEL), "--threads", "1", "-q"]
    ref = subprocess.run(CLI + scan + ["--out", str(tmp_path / "ref")], env=_env(), capture_output=True, text=True,
                         cwd=ROOT)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    procs = [_start(scan + ["--out", str(out), "--json", str(tmp_path / f"s{i}.json")], _env(), tmp_path / f"log{i}")
             for i in range(2)]
    opened, torn = 0, []
    while any(p.poll() is None for p in procs):
        for f in out.glob("*.png") if out.exists() else []:
            if is_temp(f):
                continue                        # a temporary being written: never a result
            try:
                with Image.open(f) as im:
                    im.load()
                opened += 1
            except FileNotFoundError:
                continue                    # replaced between listing and opening: not a torn file
            except OSError as e:
                torn.append(f"{f.name}: {e}")
    assert [p.returncode for p in procs] == [0, 0], [(tmp_path / f"log{i}").read_text()[-1500:] for i in range(2)]
    assert torn == [] and opened > 0
    ref_files = sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert sorted(p.name for p in out.iterdir()) == ref_files         # no temporaries left
    for name in ref_files:
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
