"""IDC patch data: the Kaggle layout reader, cache, patient split, balancing, synthetic stand-in.

No TensorFlow here: ``edgecnn.data.pipeline`` (tf.data) is the one module that imports it, and
it is not imported by this package.
"""

from edgecnn.data.balance import class_weights, undersample
from edgecnn.data.dataset import PatchSet, load_patches
from edgecnn.data.layout import EXPECTED_LAYOUT, KAGGLE_DATASET, DataError, parse_patch_name
from edgecnn.data.source import DataSource, resolve_data
from edgecnn.data.split import Split, patient_split, split_from_files
from edgecnn.data.synth import make_synthetic

__all__ = [
    "DataError",
    "DataSource",
    "EXPECTED_LAYOUT",
    "KAGGLE_DATASET",
    "PatchSet",
    "Split",
    "class_weights",
    "load_patches",
    "make_synthetic",
    "parse_patch_name",
    "patient_split",
    "resolve_data",
    "split_from_files",
    "undersample",
]
