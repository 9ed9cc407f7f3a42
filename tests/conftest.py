"""Shared fixtures. Real data comes from EDGECNN_DATA (the Kaggle layout); tests that need it
skip with a reason when it is not set, so a user's clone still runs the rest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.shared import session_root

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Each area keeps its session fixtures in its own plugin module so parallel work never collides.
pytest_plugins = [
    "tests.fixtures_data",
    "tests.fixtures_train",
    "tests.fixtures_export",
    "tests.fixtures_runtime",
    "tests.fixtures_scan",
]


# `make test` hands whole files to its xdist workers (--dist loadfile) in collection order. The
# files that take longest (measured on 2 cores) go first, longest to shortest, so the short ones
# fill the end and no worker is left running a long file alone.
LONGEST_FIRST = ("test_quantize_qat.py", "test_train.py", "test_distribute.py", "test_demo.py", "test_bench_run.py",
                 "test_export_artifacts.py", "test_runtime_load.py", "test_logs.py", "test_trt_onnx.py",
                 "test_models.py", "test_context.py", "test_edge_install.py", "test_distill.py",
                 "test_data_sources.py", "test_two_processes.py", "test_shipped_vgg13.py", "test_export_errors.py",
                 "test_slide_cli.py", "test_soak.py", "test_warmstart.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Caches go to a per-session folder: tests must not depend on (or pollute) ~/.cache."""
    if "EDGECNN_CACHE" not in os.environ or os.environ.get("EDGECNN_TEST_KEEP_CACHE") != "1":
        # One cache for every xdist worker: its entries are built under a lock and published atomically.
        cache = session_root(tmp_path_factory) / "edgecnn-cache"
        cache.mkdir(exist_ok=True)
        os.environ["EDGECNN_CACHE"] = str(cache)
    yield


@pytest.fixture(scope="session")
def idc_data() -> Path:
    """The real IDC patches (EDGECNN_DATA), or skip with the reason."""
    env = os.environ.get("EDGECNN_DATA")
    if not env:
        pytest.skip("EDGECNN_DATA is not set: point it at a Kaggle-layout IDC folder (e.g. ../shared/data/idc)")
    # Absolute, because tests link patient folders into temporary dirs and subprocesses change cwd.
    path = Path(env).resolve()
    if not path.exists():
        pytest.skip(f"EDGECNN_DATA={env} does not exist")
    return path


@pytest.fixture(scope="session")
def official_split_dir(idc_data) -> Path:
    """The published train/val patient ids, looked for beside the data folder."""
    env = os.environ.get("EDGECNN_OFFICIAL_SPLIT")
    cand = Path(env) if env else idc_data.parent / "idc-official-split"
    if not (cand / "cases_train.txt").exists():
        pytest.skip(f"no official split files at {cand} (set EDGECNN_OFFICIAL_SPLIT)")
    return cand
