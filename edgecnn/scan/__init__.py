"""Field-of-view scanning: tile a microscope frame, skip background, classify tissue tiles in
batches, and show where IDC is (heat map + overlay). No TensorFlow: this runs on the device.

    from edgecnn.scan import Scanner, overlay
    scanner = Scanner("exported/release/basic_cnn-int8-qat.tflite", threads=2)
    result = scanner.scan("frame.png")            # ScanResult: prob_map, heat, counts, ms_per_frame
    overlay("frame.png", result).save("frame.overlay.png")
"""

from edgecnn.scan.image import ImageError, as_rgb8, read_image
from edgecnn.scan.model import ModelNotFound, default_model_path, load_backend
from edgecnn.scan.overlay import overlay
from edgecnn.scan.scanner import Scanner, ScanResult
from edgecnn.scan.tiling import Grid, make_grid
from edgecnn.scan.watch import FrameEvent, WatchStats, watch

__all__ = [
    "FrameEvent", "Grid", "ImageError", "ModelNotFound", "ScanResult", "Scanner", "WatchStats",
    "as_rgb8", "default_model_path", "load_backend", "make_grid", "overlay", "read_image", "watch",
]
