"""Start a run from another model's weights (``edgecnn train --init-from``).

Two uses: fine-tune a released model on your own lab's patches (other stain, other scanner), and
give a finished run a second schedule (a warm restart) without its old optimizer state. The new
run has its own split, optimizer and schedule; only the weights (BN statistics included) come
from the source.

A source trained on some of the new run's validation or test patients would make their scores
look better than they are, so that is an error, not a warning: the patient ids are read from the
``split.json`` the source was trained with (in its run folder, or beside an exported ``.keras``).

The source may also be a folder (or its ``weights.npz``) from ``python -m edgecnn.torchtrain``,
which trains the same networks on a PyTorch GPU box: the weights are in Keras' layout already,
and the file carries a few validation patches with PyTorch's probabilities, which the Keras model
must reproduce before the run goes on (a wrong layer mapping would otherwise train on silently).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.fsutil import sha256_file
from edgecnn.train.run import RunError

OPTION = "--init-from"
TORCH_WEIGHTS = "weights.npz"     # what edgecnn.torchtrain writes
# Largest |Keras - PyTorch| IDC probability accepted on the check patches. float32 on both sides
# agrees to ~1e-5; a mixed-precision Keras model rounds its activations to 8 mantissa bits.
CHECK_TOL = {"float32": 2e-3, "mixed": 3e-2}


def init_source(spec: str) -> Path:
    """The ``.keras`` or torchtrain ``weights.npz`` behind a run folder or a file path."""
    p = Path(spec)
    if p.is_dir():
        p = p / TORCH_WEIGHTS if (p / TORCH_WEIGHTS).exists() and not (p / "model.keras").exists() else p / "model.keras"
    if p.suffix not in (".keras", ".npz"):
        raise RunError(f"{OPTION} {spec}: only Keras models carry trainable weights; pass a run folder "
                       "from `edgecnn train` or a .keras file (e.g. exported/release/basic_cnn-fp32.keras), "
                       "or a folder from `python -m edgecnn.torchtrain`, not an exported TFLite/ONNX file")
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
    if path.suffix == ".npz":
        return _load_torchtrain(model, path)
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


def _load_torchtrain(model, path: Path) -> dict[str, Any]:
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta_json")))
        check_x, check_p = arrays.pop("check_images"), arrays.pop("check_probs")
    except (OSError, ValueError, KeyError) as e:
        raise RunError(f"{OPTION} {path}: not a weights file of `python -m edgecnn.torchtrain` "
                       f"({type(e).__name__}: {e})") from e
    if meta.get("keras_name") != model.name:
        raise RunError(f"{OPTION} {path}: it holds a {meta.get('keras_name')}, this run builds a {model.name}; "
                       "pass the same --model and --input-size it was trained with")
    _set_layer_weights(model, arrays, path)
    diff = _check_probs(model, check_x, check_p)
    tol = CHECK_TOL["float32" if model.compute_dtype == "float32" else "mixed"]
    if not diff <= tol:
        raise RunError(f"{OPTION} {path}: Keras gives other probabilities than PyTorch did on its {len(check_x)} "
                       f"check patches (largest difference {diff:.2g} > {tol}); the file is damaged or its "
                       "layer layout is not this version's. Retrain with this version of edgecnn.torchtrain")
    info = {"path": str(path), "sha256": sha256_file(path), "source_model": meta["keras_name"],
            "trained_by": "edgecnn.torchtrain", "torch_meta": meta, "check_max_abs_diff": diff}
    summary = path.parent / "summary.json"
    if summary.exists():
        # The recipe and every epoch, which the run folder keeps (torchtrain.json) for its model card.
        from edgecnn.fsutil import read_json

        info["summary"] = read_json(summary)
    return info


def _set_layer_weights(model, arrays: dict[str, np.ndarray], path: Path) -> None:
    used = set()
    for layer in model.layers:
        mine = layer.get_weights()
        if not mine:
            continue
        keys = [f"{layer.name}/{i}" for i in range(len(mine))]
        missing = [k for k in keys if k not in arrays]
        if missing:
            raise RunError(f"{OPTION} {path}: no weights for {', '.join(missing)}; it was made for another network")
        for k, w in zip(keys, mine):
            if arrays[k].shape != w.shape:
                raise RunError(f"{OPTION} {path}: {k} is {arrays[k].shape}, this run's is {w.shape}; "
                               "the dense layers' sizes follow the input, so pass its --input-size")
        layer.set_weights([arrays[k].astype(np.float32) for k in keys])
        used.update(keys)
    extra = sorted(set(arrays) - used)
    if extra:
        raise RunError(f"{OPTION} {path}: weights for layers this network lacks ({', '.join(extra[:3])}); "
                       "it was made for another network")


def _check_probs(model, images: np.ndarray, probs: np.ndarray) -> float:
    from edgecnn.train.predict import predict_probs   # resizes as torchtrain did when the input is not 50 px

    mine = predict_probs(model, images).astype(np.float64)
    return float(np.max(np.abs(mine - probs.astype(np.float64))))
