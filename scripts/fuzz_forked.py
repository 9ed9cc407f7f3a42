"""Fuzz the slide reader with every case in a forked child process, so what the in-process fuzz
tests cannot survive shows up as a finding instead of ending the run: a native abort (OpenSlide /
GLib, SIGABRT), a crash (SIGSEGV), or an allocation past --limit-gb (each child's address space is
capped with RLIMIT_AS, so a runaway allocation fails in the child, never in the OOM killer), or a
case whose peak RSS passes --max-rss-mb (1 GB; measured by the kernel for each child, wait4).

    python scripts/fuzz_forked.py --cases 12000 --seed 2 [--out /tmp/edgecnn-fuzz]

Inputs: the same tiled pyramidal TIFF as tests/test_fuzz_readers.py, truncated, with bytes
overwritten anywhere or in its first 4 KB, or with a run of random bytes spliced in. A case
passes when the reader reads every band or raises its own SlideError/ImageError. Every other
outcome is saved as <out>/<kind>-<case>.tif (kind: the signal number, the exception's name, or
"rss") with a line on stdout; the last line gives the largest peak RSS of any case (it includes
the ~100 MB the child inherits from this process). Exit 1 if anything was found.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def mutate(blob: bytes, rng: random.Random) -> bytes:
    n, b, kind = len(blob), bytearray(blob), rng.randrange(4)
    if kind == 0:
        return blob[:rng.randrange(n + 1)]
    if kind == 3:
        at, junk = rng.randrange(n), rng.randbytes(rng.randint(1, 64))
        return bytes(b[:at] + junk + b[at + len(junk):])
    span = n if kind == 1 else min(4096, n)       # anywhere, or where the headers are
    for _ in range(rng.randint(1, 12 if kind == 1 else 6)):
        b[rng.randrange(span)] = rng.randrange(256)
    return bytes(b)


def read_all(path: Path, mpp: float | None) -> None:
    """The child: read the slide as a scan does; exit 0 on success or the reader's own error."""
    from edgecnn.scan.image import ImageError
    from edgecnn.scan.slide import SlideError, open_slide

    try:
        reader = open_slide(path, mpp=mpp)
        try:
            for _ in reader.bands(100):
                pass
        finally:
            reader.close()
    except (SlideError, ImageError):
        pass
    except BaseException as e:  # noqa: BLE001 — the finding: report its name through the exit path
        (path.parent / "exception.txt").write_text(type(e).__name__)
        os._exit(3)
    os._exit(0)


def run_case(path: Path, blob: bytes, mpp: float | None, limit: int) -> tuple[str | None, float]:
    """(None when the case passed, else what happened: a signal number or an exception's name;
    the child's peak RSS in MB)."""
    path.write_bytes(blob)
    (path.parent / "exception.txt").unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)                     # libtiff / tifffile warnings: not findings
        read_all(path, mpp)
    _, status, usage = os.wait4(pid, 0)
    rss_mb = usage.ru_maxrss / 1024            # Linux reports kilobytes
    if os.WIFSIGNALED(status):
        return f"signal{os.WTERMSIG(status)}", rss_mb
    if os.WEXITSTATUS(status) == 3:
        return (path.parent / "exception.txt").read_text(), rss_mb
    return None, rss_mb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit-gb", type=float, default=4.0, help="address space of each child (default 4 GB)")
    ap.add_argument("--max-rss-mb", type=float, default=1024.0, help="peak RSS a case may reach (default 1 GB)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/edgecnn-fuzz"))
    a = ap.parse_args(argv)
    from tests.test_fuzz_readers import _pyramid_tif

    a.out.mkdir(parents=True, exist_ok=True)
    blob, rng, found, peak = _pyramid_tif(), random.Random(a.seed), 0, 0.0
    for i in range(a.cases):
        case = mutate(blob, rng)
        what, rss_mb = run_case(a.out / "case.tif", case, rng.choice([None, 4.0]), int(a.limit_gb * (1 << 30)))
        peak = max(peak, rss_mb)
        what = what or ("rss" if rss_mb > a.max_rss_mb else None)
        if what:
            found += 1
            (a.out / f"{what}-{i}.tif").write_bytes(case)
            print(f"case {i}: {what} -> {a.out / f'{what}-{i}.tif'}", flush=True)
        if (i + 1) % 1000 == 0:
            print(f"{i + 1}/{a.cases} cases, {found} found", file=sys.stderr, flush=True)
    print(f"{a.cases} cases, {found} found; largest peak RSS of a case {peak:.0f} MB")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
