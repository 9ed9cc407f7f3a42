"""Bad requests fail early with an error that names the fix; nothing is converted first."""

from __future__ import annotations

import shutil

import pytest


def test_unknown_format_or_precision():
    from edgecnn.export import ExportError, select_specs

    with pytest.raises(ExportError, match="known pairs"):
        select_specs("tflite", "int4")
    with pytest.raises(ExportError, match="unknown format"):
        select_specs("coreml", None)
    assert [s.precision for s in select_specs("onnx", "int8")] == ["int8-ptq"]
    assert {s.format for s in select_specs("all", "fp32")} == {"tflite", "onnx", "openvino", "trt"}
    assert {s.format for s in select_specs("all", "int8")} >= {"tflite", "onnx", "openvino", "trt", "vela"}


def test_run_errors(export_run, tmp_path):
    from edgecnn.export import ExportError, export_run as export
    from edgecnn.train.run import RunError

    with pytest.raises(RunError, match="no such run folder"):
        export(tmp_path / "missing", "tflite", "fp32", progress=False)
    broken = tmp_path / "broken"
    shutil.copytree(export_run.path, broken, ignore=shutil.ignore_patterns("qat", "ckpt", "plots"))
    (broken / "model.keras").write_bytes(b"\x00garbage")
    with pytest.raises(RunError, match="cannot load the model"):
        export(broken, "tflite", "fp32", out=tmp_path / "o", progress=False, limit=50)
    (broken / "model.keras").unlink()
    with pytest.raises(RunError, match="no trained model"):
        export(broken, "tflite", "fp32", out=tmp_path / "o", progress=False)
    # No QAT model: a QAT precision asked for by name says to run `edgecnn quantize` first.
    no_qat = tmp_path / "noqat"
    shutil.copytree(export_run.path, no_qat, ignore=shutil.ignore_patterns("qat", "ckpt", "plots"))
    with pytest.raises(RunError, match="edgecnn quantize"):
        export(no_qat, "tflite", "int8-qat", out=tmp_path / "o", progress=False)
    with pytest.raises(ExportError, match="--io"):
        export(no_qat, "onnx", "fp32", io="uint8", out=tmp_path / "o", progress=False)
    with pytest.raises(ExportError, match="--batch"):
        export(no_qat, "onnx", "fp32", batch="big", out=tmp_path / "o", progress=False)


def test_empty_representative_set(export_run, tmp_path):
    from edgecnn.export import ExportError, export_run as export

    with pytest.raises(ExportError, match="representative set is empty"):
        export(export_run, "tflite", "int8-ptq", out=tmp_path, calib_size=0, progress=False, limit=50)
    assert not list(tmp_path.glob("*.tflite"))


def test_existing_artifact_needs_force(export_run, tmp_path):
    from edgecnn.export import ExportError, export_run as export

    (m,) = export(export_run, "tflite", "fp32", out=tmp_path, progress=False, limit=50, check_parts=("test",))
    before = (tmp_path / m["file"]).stat().st_mtime_ns
    with pytest.raises(ExportError, match="--force") as e:
        export(export_run, "tflite", "fp32", out=tmp_path, progress=False)
    assert "force=True" not in str(e.value)          # messages name the CLI flag, not the Python argument
    assert (tmp_path / m["file"]).stat().st_mtime_ns == before
    (m2,) = export(export_run, "tflite", "fp32", out=tmp_path, force=True, progress=False, limit=50,
                   check_parts=("test",))
    assert m2["sha256"] == m["sha256"]


def test_trt_without_gpu_fails_at_once(export_run, tmp_path, monkeypatch):
    from edgecnn.export import ToolMissing, export_run as export
    from edgecnn.export.tensorrt import preflight

    try:
        preflight()
        pytest.skip("TensorRT and an NVIDIA GPU are present here")
    except ToolMissing:
        pass
    from edgecnn.train.run import RunFolder

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the TensorRT check")

    monkeypatch.setattr(RunFolder, "load_model", no_model)   # the check comes before any model load
    with pytest.raises(ToolMissing, match=r"pip install edgecnn\[trt\]"):
        export(export_run, "trt", out=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_failed_export_leaves_nothing_and_the_retry_runs(export_run, tmp_path):
    """Artifacts are staged and moved in only when all passed: a late failure leaves no file (and
    no staging folder) behind, so the retry needs no --force."""
    from edgecnn.export import export_run as export
    from edgecnn.fsutil import sha256_file, write_json
    from edgecnn.train.run import RunError

    run = tmp_path / "run"
    shutil.copytree(export_run.path, run, ignore=shutil.ignore_patterns("qat", "ckpt", "plots"))
    (run / "qat").mkdir()
    (run / "qat" / "model.keras").write_bytes(b"\x00 a QAT model cut short")
    # ...that quantize finished writing (its model.json describes it): export takes it, and fails late.
    write_json(run / "qat" / "model.json", {"model_sha256": sha256_file(run / "qat" / "model.keras")})
    out = tmp_path / "exported"
    # tflite makes fp32, fp16 and dynamic, then fails on int8-qat: the damaged QAT model.
    with pytest.raises(RunError, match="cannot load the QAT model"):
        export(run, "tflite", out=out, progress=False, limit=20, check_parts=("test",))
    assert not out.exists() or not any(out.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) in (["run"], ["exported", "run"])   # no staging folder left
    (m,) = export(run, "tflite", "fp32", out=out, progress=False, limit=20, check_parts=("test",))
    assert sorted(p.name for p in out.iterdir()) == [m["file"], m["file"] + ".json"]
    # The manifest carries no build-machine path (it ships with the artifact).
    assert m["source"]["run"] == "run"            # outside the working folder: the run's name only
    assert m["source"]["split"]["file"] == "split.json"
    assert str(tmp_path) not in (out / (m["file"] + ".json")).read_text()


def test_a_killed_exports_staging_folder_is_removed_by_the_next(tmp_path):
    """SIGKILL leaves `.<out>.export-*` behind (scripts/kill_trials.py found 15 in 20 trials): the
    next export removes folders whose owner process is gone, never a running export's."""
    import os
    import subprocess
    import sys

    from edgecnn.export.api import STAGE_OWNER, remove_orphaned_stages

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    prefix = ".out.export-"
    for name, pid in (("a", dead.pid), ("b", os.getpid())):
        (tmp_path / f"{prefix}{name}").mkdir()
        (tmp_path / f"{prefix}{name}" / STAGE_OWNER).write_text(str(pid))
    (tmp_path / f"{prefix}young").mkdir()       # no owner yet, just made: maybe a starting export
    removed = remove_orphaned_stages(tmp_path, prefix)
    assert [p.name for p in removed] == [f"{prefix}a"]
    assert {p.name for p in tmp_path.iterdir()} == {f"{prefix}b", f"{prefix}young"}


def test_a_qat_model_an_interrupted_quantize_left_is_not_exported(export_run, tmp_path):
    """qat/model.keras without the model.json quantize writes after it (killed in between): export
    refuses it, saying how to finish, instead of converting it with the float model's threshold."""
    from edgecnn.export import export_run as export
    from edgecnn.train.run import RunError

    run = tmp_path / "run"
    shutil.copytree(export_run.path, run, ignore=shutil.ignore_patterns("qat", "ckpt", "plots"))
    (run / "qat").mkdir()
    (run / "qat" / "model.keras").write_bytes(b"a QAT model nothing describes yet")
    with pytest.raises(RunError, match="not a finished QAT model.*quantize .*--resume"):
        export(run, "tflite", "int8", out=tmp_path / "exported", progress=False, limit=20)
    assert not (tmp_path / "exported").exists()
