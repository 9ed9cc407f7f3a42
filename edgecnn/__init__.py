"""edgecnn: the IDC histopathology CNNs from training to the edge.

Importing this package (and ``edgecnn.runtime``, ``edgecnn.scan``, ``edgecnn.metrics``,
``edgecnn.manifest``) never imports TensorFlow: the on-device install has none.
"""

__version__ = "0.1.0"

CLASS_NAMES = ("no_idc", "idc")
PATCH_SIZE = 50
