"""The device layers read top to bottom: importing the scanner loads neither the bench harness,
the dataset loader, training nor TensorFlow (a package's names load on first use)."""

import json
import subprocess
import sys


def _loaded(stmt: str) -> set[str]:
    code = f"import json, sys; {stmt}; print(json.dumps(sorted(m for m in sys.modules if m.startswith(('edgecnn', 'tensorflow')))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_scan_loads_only_what_it_uses():
    mods = _loaded("import edgecnn.scan")
    assert not {m for m in mods if m.startswith("tensorflow")}
    for heavy in ("edgecnn.bench.harness", "edgecnn.bench.data", "edgecnn.data.dataset", "edgecnn.data.split",
                  "edgecnn.data.cache", "edgecnn.train", "edgecnn.export"):
        assert heavy not in mods, heavy
    assert len(mods) <= 25, sorted(mods)


def test_package_names_still_resolve():
    mods = _loaded("from edgecnn.data import load_patches, DataError, Split; from edgecnn.bench import run_bench, Latency")
    assert {"edgecnn.data.dataset", "edgecnn.data.split", "edgecnn.bench.harness"} <= mods
    import edgecnn.bench
    import edgecnn.data

    for pkg in (edgecnn.data, edgecnn.bench):
        for name in pkg.__all__:
            assert getattr(pkg, name) is not None
