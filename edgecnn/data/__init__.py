"""IDC patch data: the Kaggle layout reader, cache, patient split, balancing, synthetic stand-in.

No TensorFlow here: ``edgecnn.data.pipeline`` (tf.data) is the one module that imports it, and
it is not imported by this package. The names below load on first use (PEP 562), so the device
code that needs one decoder does not load the dataset, split and cache modules with it.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "class_weights": "balance", "undersample": "balance",
    "PatchSet": "patchset", "load_patches": "dataset",
    "EXPECTED_LAYOUT": "layout", "KAGGLE_DATASET": "layout", "DataError": "layout", "parse_patch_name": "layout",
    "DataSource": "source", "resolve_data": "source",
    "Split": "split", "patient_split": "split", "split_from_files": "split",
    "make_synthetic": "synth",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'edgecnn.data' has no attribute {name!r}")
    return getattr(import_module(f"edgecnn.data.{_WHERE[name]}"), name)
