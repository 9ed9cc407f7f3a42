"""Patient-level train/val/test splits. A patient's patches are never in two parts: patches of
one patient are strongly correlated, so a patch-level split would leak and flatter the model.

``patient_split`` stratifies by each patient's IDC share: patients are sorted by share (ties in
seeded random order), cut into strata of consecutive patients, shuffled within a stratum with
the seed, and then dealt out along that order so that each part gets evenly spaced patients,
i.e. the same mix of low- and high-prevalence patients, in the requested proportions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.data.layout import DataError
from edgecnn.fsutil import read_json, write_json

if TYPE_CHECKING:
    from edgecnn.data.patchset import PatchSet

PARTS = ("train", "val", "test")
_STRATUM = 8  # patients per stratum: small enough to stratify, large enough for the seed to matter


@dataclass
class Split:
    train: list[str]
    val: list[str]
    test: list[str]
    method: str = "stratified"
    seed: int | None = 0
    info: dict[str, Any] = field(default_factory=dict)   # e.g. listed ids missing from the data

    def __post_init__(self) -> None:
        self.train, self.val, self.test = (sorted(str(p) for p in part) for part in (self.train, self.val, self.test))

    def parts(self) -> dict[str, list[str]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def part_of(self, patient: str) -> str | None:
        for name, ids in self.parts().items():
            if patient in ids:
                return name
        return None

    def check_disjoint(self) -> "Split":
        seen: dict[str, str] = {}
        for name, ids in self.parts().items():
            for p in ids:
                if p in seen:
                    where = f"twice in {name}" if seen[p] == name else f"in both {seen[p]} and {name}"
                    raise ValueError(f"patient {p} is {where}: splits must list each patient once")
                seen[p] = name
        return self

    def counts(self, ps: "PatchSet | None" = None) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        stats = ps.patient_stats() if ps is not None else None
        for name, ids in self.parts().items():
            c: dict[str, Any] = {"patients": len(ids)}
            if stats is not None:
                n = sum(stats[p][0] for p in ids if p in stats)
                pos = sum(stats[p][1] for p in ids if p in stats)
                c.update(patches=n, class_counts={"0": n - pos, "1": pos})
            out[name] = c
        return out

    def to_dict(self, ps: "PatchSet | None" = None) -> dict[str, Any]:
        return {
            "method": self.method,
            "seed": self.seed,
            "train": self.train,
            "val": self.val,
            "test": self.test,
            "counts": self.counts(ps),
            "info": self.info,
        }

    def save(self, path: str | os.PathLike, ps: "PatchSet | None" = None) -> Path:
        self.check_disjoint()
        return write_json(path, self.to_dict(ps))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Split":
        try:
            d = read_json(path)
            parts = [d[k] for k in ("train", "val", "test")]
            if not all(isinstance(v, list) and all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in v)
                       for v in parts):
                raise TypeError("train, val and test must be lists of patient ids")
            return cls(*parts, d.get("method", "unknown"), d.get("seed"), d.get("info", {})).check_disjoint()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise DataError(f"{path}: not a valid split file ({type(e).__name__}: {e}); "
                            "write one with `edgecnn data split PATH --out FILE`") from e


def _counts(n: int, val: float, test: float) -> tuple[int, int]:
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val={val} and test={test} must be fractions in [0, 1) with val + test < 1")
    n_val, n_test = round(val * n), round(test * n)
    # A requested part gets at least one patient as long as train keeps at least one.
    if val > 0 and n_val == 0 and n >= 3:
        n_val = 1
    if test > 0 and n_test == 0 and n >= 3:
        n_test = 1
    if n_val + n_test >= n:
        raise DataError(f"{n} patient(s) cannot make a train part with val={val}, test={test}; "
                        "a patient-level split needs more patients")
    return n_val, n_test


def stratified_order(stats: dict[str, tuple[int, int]], seed: int) -> list[str]:
    """Patients by IDC share, ties and strata shuffled with ``seed``."""
    rng = np.random.default_rng(seed)
    ids = sorted(stats)
    tiebreak = rng.random(len(ids))
    order = sorted(range(len(ids)), key=lambda i: (stats[ids[i]][1] / max(stats[ids[i]][0], 1), tiebreak[i]))
    out: list[str] = []
    for s in range(0, len(order), _STRATUM):
        stratum = [ids[i] for i in order[s : s + _STRATUM]]
        rng.shuffle(stratum)
        out.extend(stratum)
    return out


def deal(order: list[str], sizes: dict[str, int]) -> dict[str, list[str]]:
    """Give each position to the part furthest behind its target share: evenly spaced picks."""
    n = len(order)
    got = {k: [] for k in sizes}
    for i, pid in enumerate(order):
        part = max(sizes, key=lambda k: (sizes[k] * (i + 1) / n - len(got[k]), -list(sizes).index(k)))
        got[part].append(pid)
    return got


def patient_split(ps: "PatchSet", val: float = 0.15, test: float = 0.15, seed: int = 0) -> Split:
    stats = ps.patient_stats()
    n_val, n_test = _counts(len(stats), val, test)
    sizes = {"test": n_test, "val": n_val, "train": len(stats) - n_val - n_test}
    got = deal(stratified_order(stats, seed), sizes)
    return Split(got["train"], got["val"], got["test"], method="stratified", seed=seed).check_disjoint()


def read_ids(path: str | os.PathLike) -> list[str]:
    """One patient id per line; blank lines and ``#`` comments are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read patient id list {path}: {e.strerror or e}") from e
    ids = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    return [i for i in ids if i]


def split_from_files(
    ps: "PatchSet",
    train_file: str | os.PathLike,
    val_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
) -> Split:
    """A split from patient-id lists (e.g. the published ``cases_train.txt`` / ``cases_val.txt``).

    - Patients in the data but in no list go to **test** when ``test_file`` is not given (the
      published split withholds its test ids, so "the rest" is the test set); with a
      ``test_file`` they are left out and listed in ``info["unassigned"]``.
    - Without ``val_file``, ``val`` (a fraction of the train patients) is split off the train
      list, stratified with ``seed``. If no test patients remain, ``test`` is split off likewise.
    - Ids listed but absent from the data are dropped and reported in ``info["missing"]``.
    """
    present = set(ps.patient_ids)
    lists = {"train": read_ids(train_file)}
    if val_file is not None:
        lists["val"] = read_ids(val_file)
    if test_file is not None:
        lists["test"] = read_ids(test_file)
    owner: dict[str, str] = {}
    for name, ids in lists.items():
        for p in ids:
            if p in owner and owner[p] != name:
                raise DataError(f"patient {p} is listed in both the {owner[p]} and the {name} file; "
                                "a patient must be in one part only")
            owner[p] = name
    missing = {name: sorted(set(ids) - present) for name, ids in lists.items()}
    parts = {name: sorted(set(ids) & present) for name, ids in lists.items()}
    rest = sorted(present - set(owner))
    info: dict[str, Any] = {"missing": missing, "files": {k: str(v) for k, v in
                                                          (("train", train_file), ("val", val_file), ("test", test_file)) if v}}
    if test_file is None:
        parts["test"] = rest
        info["test_is_rest"] = True
    else:
        info["unassigned"] = rest
    stats = ps.patient_stats()
    for name, frac in (("val", val), ("test", test)):
        if parts.get(name):
            continue
        # Carve the missing part out of train, stratified like patient_split.
        train_stats = {p: stats[p] for p in parts["train"]}
        n_take = _counts(len(train_stats), frac, 0.0)[0] if frac > 0 else 0
        got = deal(stratified_order(train_stats, seed), {name: n_take, "train": len(train_stats) - n_take})
        parts[name], parts["train"] = got[name], got["train"]
        info[f"{name}_from_train"] = n_take
    method = "files" if not any(k.endswith("_from_train") for k in info) else "files+stratified"
    return Split(parts["train"], parts["val"], parts["test"], method=method, seed=seed, info=info).check_disjoint()


def fold_splits(split: Split, stats: dict[str, tuple[int, int]], k: int, seed: int = 0) -> list[Split]:
    """``k`` splits that each hold out one fold of ``split``'s training patients as their test part.

    Folds are dealt like ``patient_split`` (stratified by IDC share); validation stays ``split``'s, so
    a fold model chooses its epoch on the same patients as the release. Every training patient is
    in exactly one fold's test part: the fold models' outputs on it are out-of-fold.
    """
    if not 2 <= k <= len(split.train):
        raise DataError(f"k={k} folds need 2 to {len(split.train)} training patients per fold set")
    missing = sorted(set(split.train) - set(stats))
    if missing:
        raise DataError(f"{len(missing)} training patients of the split are not in the data (e.g. {missing[:3]}); "
                        "pass the data the split was made from")
    order = stratified_order({p: stats[p] for p in split.train}, seed)
    n = len(order)
    folds = deal(order, {str(i): n // k + (1 if i < n % k else 0) for i in range(k)})
    return [Split(sorted(set(split.train) - set(f)), split.val, f, method=f"fold {i + 1}/{k}", seed=seed,
                  info={"folds": k}).check_disjoint()
            for i, f in ((int(i), f) for i, f in folds.items())]
