"""Field-of-view scanning: tile a microscope frame, skip background, classify tissue tiles in
batches, and show where IDC is (heat map + overlay). No TensorFlow: this runs on the device.

    from edgecnn.scan import Scanner, overlay
    scanner = Scanner("exported/release/basic_cnn-int8-qat.tflite", threads=2)
    result = scanner.scan("frame.png")            # ScanResult: prob_map, heat, counts, ms_per_frame
    overlay("frame.png", result).save("frame.overlay.png")

Live (video, camera, watched folder): a FrameSource through the three-thread pipeline.

    from edgecnn.scan import Camera, VideoFile, VideoOut, run_live
    report = run_live(VideoFile("clip.mp4"), scanner, [VideoOut("clip.overlay.mp4")])
    report.summary()                              # per-stage p50/p99 ms, delivered fps, drops
"""

from edgecnn.scan.image import ImageError, as_rgb8, read_image
from edgecnn.scan.live import LivePipeline, LiveReport, Sink, SinkSkip, run_live
from edgecnn.scan.model import ModelNotFound, default_model_path, load_backend
from edgecnn.scan.overlay import overlay, overlay_array
from edgecnn.scan.scanner import Scanner, ScanResult
from edgecnn.scan.sinks import JsonLines, PngFiles, VideoOut, Window
from edgecnn.scan.sources import ArrayFrames, Camera, Frame, FrameSource, ImageFiles, SourceError, VideoFile
from edgecnn.scan.tiling import Grid, make_grid
from edgecnn.scan.watch import FolderWatch, FrameEvent, WatchStats, watch

__all__ = [
    "ArrayFrames", "Camera", "FolderWatch", "Frame", "FrameEvent", "FrameSource", "Grid", "ImageError", "ImageFiles",
    "JsonLines", "LivePipeline", "LiveReport", "ModelNotFound", "PngFiles", "ScanResult", "Scanner", "Sink",
    "SinkSkip", "SourceError", "VideoFile", "VideoOut", "WatchStats", "Window", "as_rgb8", "default_model_path",
    "load_backend", "make_grid", "overlay", "overlay_array", "read_image", "run_live", "watch",
]
