"""Start a run from another model's weights (``edgecnn train --init-from``).

Two uses: fine-tune a released model on your own lab's patches (other stain, other scanner), and
give a finished run a second schedule (a warm restart) without its old optimizer state. The new
run has its own split, optimizer and schedule; only the weights (BN statistics included) come
from the source.

A source trained on some of the new run's validation or test patients would make their scores
look better than they are, so that is an error, not a warning: the patient ids are read from the
``split.json`` the source was trained with (in its run folder, or beside an exported ``.keras``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecnn.fsutil import sha256_file
from edgecnn.train.run import RunError

OPTION = "--init-from"


def init_source(spec: str) -> Path:
    """The ``.keras`` file behind a run folder or a ``.keras`` path."""
    p = Path(spec)
    if p.is_dir():
        p = p / "model.keras"
    if p.suffix != ".keras":
        raise RunError(f"{OPTION} {spec}: only Keras models carry trainable weights; pass a run folder "
                       "from `edgecnn train` or a .keras file (e.g. exported/release/basic_cnn-fp32.keras), "
                       "not an exported TFLite/ONNX file")
    if not p.exists():
        raise RunError(f"{OPTION} {spec}: no {p.name} there; pass a run folder with a trained model or a .keras file")
    return p


def check_no_leak(spec: str, val: list[str], test: list[str]) -> dict[str, Any]:
    """Refuse a source that trained on the new run's validation or test patients."""
    from edgecnn.data.split import Split

    path = init_source(spec)
    split_path = path.parent / "split.json"
    if not split_path.exists():
        # A model from elsewhere: nothing to check against, and the config records that.
        return {"split": None, "checked": False}
    seen = set(Split.load(split_path).train)
    leaked = {part: sorted(seen.intersection(ids)) for part, ids in (("validation", val), ("test", test))}
    leaked = {part: ids for part, ids in leaked.items() if ids}
    if leaked:
        where = "; ".join(f"{len(ids)} {part} patients ({', '.join(ids[:3])}{', …' if len(ids) > 3 else ''})"
                          for part, ids in leaked.items())
        raise RunError(f"{OPTION} {spec}: the source was trained on {where} of this run ({split_path}), "
                       f"so their scores would be inflated. Use --split {split_path} to keep every patient "
                       "in the part it had, or start from a model that never saw them")
    return {"split": str(split_path), "checked": True}


def load_init_weights(model, spec: str) -> dict[str, Any]:
    """Copy the source's weights into ``model`` (built for this run); what config.json records."""
    from edgecnn.models.precision import load_float32

    path = init_source(spec)
    try:
        source = load_float32(path)
    except Exception as e:  # Keras raises many types for a damaged file
        raise RunError(f"{OPTION} {path}: cannot load the model ({type(e).__name__}: {e})") from e
    _check_shapes(model, source, path)
    model.set_weights(source.get_weights())
    return {"path": str(path), "sha256": sha256_file(path), "source_model": source.name}


def _check_shapes(model, source, path: Path) -> None:
    # The name tells the Conv→BN→ReLU and the seed's order apart, which have the same shapes.
    if source.name != model.name:
        raise RunError(f"{OPTION} {path}: it is a {source.name}, this run builds a {model.name}; pass the "
                       "source's --model (and --seed-order if its name ends in _seed_order)")
    mine = [(w.name, tuple(w.shape)) for w in model.weights]
    theirs = [(w.name, tuple(w.shape)) for w in source.weights]
    for (name, shape), (src_name, src_shape) in zip(mine, theirs, strict=True):
        if shape != src_shape:
            raise RunError(f"{OPTION} {path}: weight {src_name} is {src_shape}, this run's {name} is {shape}; "
                           "the dense layers' sizes follow the input, so pass the source's --input-size")
