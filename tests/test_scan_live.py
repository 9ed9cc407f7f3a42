"""Frame sources (video files, a camera index, arrays) and the pipelined live loop, on videos
made from real mosaics with cv2.VideoWriter and the real int8 TFLite model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecnn.scan import Scanner
from edgecnn.scan.live import LivePipeline, run_live
from edgecnn.scan.overlay import overlay_array
from edgecnn.scan.sinks import JsonLines, PngFiles, VideoOut
from edgecnn.scan.sources import ArrayFrames, Camera, ImageFiles, SourceError, VideoFile, cv2_to_rgb, open_inputs
from tests.fixtures_scan import field_of_view, video_frames

cv2 = pytest.importorskip("cv2")


def test_video_file_gives_every_frame_in_rgb(make_video):
    path, frames = make_video("clip.avi", n=6)
    with VideoFile(path) as src:
        got = list(src)
        assert src.fps == pytest.approx(10.0) and src.frame_count == 6 and not src.stopped_by
    assert [f.index for f in got] == list(range(6)) and all(f.ok for f in got)
    for f, ref in zip(got, frames):
        np.testing.assert_array_equal(f.image, ref)          # lossless codec, channels in RGB order
    assert got[2].name == "clip.avi#2" and got[2].capture_ms > 0


def test_unopenable_video_and_missing_camera(tmp_path):
    with pytest.raises(SourceError, match="no such video file"):
        VideoFile(tmp_path / "nope.mp4")
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video")
    with pytest.raises(SourceError, match=r"notes\.mp4: OpenCV/FFmpeg cannot open it"):
        VideoFile(fake)
    with pytest.raises(SourceError, match=r"camera 57: cannot open it.*Video devices here"):
        Camera(57)


def test_truncated_video_keeps_every_good_frame(make_video, scan_backend, tmp_path):
    path, frames = make_video("cut.avi", n=10)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:int(len(data) * 0.55)])            # the recorder died mid-file
    out = tmp_path / "cut.overlay.avi"
    lines = tmp_path / "cut.jsonl"
    src = VideoFile(cut)
    sink = JsonLines(str(lines))
    report = run_live(src, Scanner(scan_backend), [VideoOut(out, fps=src.fps), sink])
    sink.finish()
    good = report.rendered
    assert 2 <= good < 10 and report.failed == 0
    assert src.stopped_by == f"truncated at frame {good} of 10"
    assert report.summary()["source"]["stopped_by"] == src.stopped_by
    written = video_frames(out)                              # complete up to the last good frame
    assert len(written) == good and written[0].shape == frames[0].shape
    recs = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(good))


def test_pipeline_output_is_the_overlay_of_each_frame(make_video, scan_backend, tmp_path):
    path, frames = make_video("seq.avi", n=5)
    scanner = Scanner(scan_backend)
    out = tmp_path / "seq.overlay.avi"
    report = run_live(VideoFile(path), scanner, [VideoOut(out), PngFiles(tmp_path / "png")])
    assert (report.captured, report.scanned, report.rendered, report.dropped) == (5, 5, 5, 0)
    s = report.summary()
    assert set(s["stages_ms"]) == {"capture", "scan", "render"} and s["fps"] > 0 and s["bound_fps"] > 0
    assert all(s["stages_ms"][k]["p99"] >= s["stages_ms"][k]["p50"] > 0 for k in ("scan", "render"))
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert [p.name for p in pngs] == [f"seq.avi-{i}.overlay.png" for i in range(5)]
    from PIL import Image

    for i in (0, 4):                                         # PNG = the overlay of the same frame, exactly
        expect = overlay_array(frames[i], scanner.scan(frames[i]))
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "png" / f"seq.avi-{i}.overlay.png")), expect)
    assert len(video_frames(out)) == 5                       # MJPG: lossy, so only the count is exact


def test_bad_frames_are_counted_and_the_loop_goes_on(mosaic, scan_backend, tmp_path):
    good = field_of_view(mosaic.image, 1)
    grey16 = (good.mean(-1) * 257).astype(np.uint16)          # a 16-bit monochrome camera
    frames = [good, field_of_view(mosaic.image, 2),
              field_of_view(mosaic.image, 3, size=(240, 320)),   # the camera changed resolution
              grey16,
              good[:20, :20],                                     # smaller than a tile
              np.full(good.shape, 3.5, np.float32),               # not pixels: float out of [0, 1]
              field_of_view(mosaic.image, 4)]
    lines = tmp_path / "f.jsonl"
    out = tmp_path / "f.overlay.mp4"
    sink = JsonLines(str(lines))
    report = run_live(ArrayFrames(frames, "cam"), Scanner(scan_backend), [VideoOut(out), sink])
    sink.finish()
    assert (report.captured, report.scanned, report.failed, report.rendered) == (7, 5, 2, 5)
    assert report.sink_skips == {"video": 1}                  # the 240×320 frame cannot join a 360×480 video
    assert len(video_frames(out)) == 4
    recs = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [("error" in r) for r in recs] == [False, False, False, False, True, True, False]
    assert "cam#4" in recs[4]["error"] and "50" in recs[4]["error"]
    assert "cam#5" in recs[5]["error"] and "[0, 1]" in recs[5]["error"]
    assert recs[3]["tiles"] == recs[0]["tiles"]              # the grey 16-bit frame was scanned as a frame


def test_opencv_frames_become_rgb():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 0] = 200                                        # blue in OpenCV's order
    assert (cv2_to_rgb(bgr, "x")[..., 2] == 200).all()
    grey16 = np.full((4, 4), 65535, np.uint16)
    assert (cv2_to_rgb(grey16, "x") == 255).all() and cv2_to_rgb(grey16, "x").shape == (4, 4, 3)
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 2] = 90                                        # red, fully transparent → white
    assert (cv2_to_rgb(bgra, "x") == 255).all()


def test_newest_policy_drops_frames_when_scanning_is_slower(mosaic, scan_backend):
    frames = [field_of_view(mosaic.image, i, size=(500, 700)) for i in range(30)]
    src = ArrayFrames(frames, "burst", live=True)             # a camera that does not wait
    seen = []
    p = LivePipeline(src, Scanner(scan_backend), [], queue_size=1, on_frame=lambda item, r: seen.append(item.frame.index))
    report = p.run()
    assert report.policy == "newest"
    assert report.dropped > 0 and report.rendered + report.dropped == 30
    assert seen == sorted(seen) and seen[-1] == 29           # in order, and the newest frame is always shown


def test_policy_all_and_max_frames(make_video, scan_backend):
    path, _ = make_video("all.avi", n=6)
    report = run_live(VideoFile(path), Scanner(scan_backend), [], max_frames=4, policy="all")
    assert (report.rendered, report.dropped, report.stopped_by) == (4, 0, "max_frames")
    with pytest.raises(ValueError, match="policy"):
        LivePipeline(VideoFile(path), Scanner(scan_backend), policy="sometimes")


def test_inputs_are_grouped_into_sources(make_video, tmp_path):
    path, _ = make_video("g.avi", n=2)
    srcs = open_inputs([tmp_path / "a.png", tmp_path / "b.png", path, tmp_path / "c.png"])
    assert [type(s) for s in srcs] == [ImageFiles, VideoFile, ImageFiles]
    frames = list(srcs[0])
    assert [f.ok for f in frames] == [False, False] and "no such image file" in frames[0].error
    assert srcs[0].failed == 2


def test_stage_times_keep_exact_totals_and_a_bounded_sample():
    from edgecnn.scan.live import StageTimes

    times = np.random.default_rng(1).gamma(2.0, 10.0, 5000)
    st = StageTimes(keep=500)
    for t in times:
        st.append(float(t))
    assert len(st) == 5000 and len(st.kept) == 500          # a camera running for days keeps 500, not all
    lat = st.latency()
    assert (lat.n, lat.min, lat.max) == (5000, times.min(), times.max())
    assert lat.mean == pytest.approx(times.mean())
    # The sample is uniform over the whole run: its median is the run's, within the spread of a
    # 500-sample estimate (seeded, so this is one fixed draw).
    assert abs(lat.p50 - np.median(times)) < 0.1 * np.median(times)
    with pytest.raises(ValueError):
        StageTimes(keep=0)


RELEASE_MODEL = Path(__file__).resolve().parents[1] / "exported" / "release" / "basic_cnn-int8-qat.tflite"
FIELD = Path(__file__).resolve().parents[1] / "examples" / "field-14082.png"


def _field_frames(n: int, size=(150, 200)) -> list[np.ndarray]:
    from PIL import Image

    image = np.asarray(Image.open(FIELD).convert("RGB"))
    return [field_of_view(image, i, size=size) for i in range(n)]


def test_long_run_keeps_no_per_frame_state(tmp_path):
    """A live loop's memory must not grow with its frames: stage times are a bounded sample, and
    the PNG sink hands each overlay's path to its frame instead of keeping a map of them (the
    CLI's map of frame → overlay was only emptied for image files, so a --watch run grew by a
    path per frame for as long as it ran)."""
    frames = _field_frames(60)
    png = PngFiles(tmp_path / "png")
    paths = []
    p = LivePipeline(ArrayFrames(frames, "cam"), Scanner(RELEASE_MODEL, threads=1), [png], stage_samples=16,
                     on_frame=lambda item, r: paths.append(item.outputs["png"]))
    report = p.run()
    assert report.rendered == 60 and paths == [tmp_path / "png" / f"cam-{i}.overlay.png" for i in range(60)]
    assert all(path.exists() for path in paths)
    assert all(len(v.kept) == 16 for v in report.stage_ms.values())
    assert report.summary()["stages_ms"]["scan"]["n"] == 60      # counts stay exact
    held = {k: len(v) for k, v in vars(png).items() if isinstance(v, (dict, set, list))}
    assert held == {"used": 60}                                   # the names it must not reuse, nothing else
