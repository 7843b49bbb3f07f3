"""Source URIs, the sources themselves, and the grabber's latest-frame and watchdog behaviour."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from deconv_edge_core.errors import UserError
from edge_runtime.video.grabber import FrameGrabber, SourceLost
from edge_runtime.video.sinks import SINKS, parse_sink_uri
from edge_runtime.video.sources import SOURCES, open_source, parse_source_uri
from edge_runtime.video.sources._opencv import opencv_video_backends

from .conftest import synthetic_frame


@pytest.mark.parametrize("uri,scheme,target", [
    ("0", "v4l2", "0"),
    ("/dev/video2", "v4l2", "/dev/video2"),
    ("v4l2:///dev/video1?width=640", "v4l2", "/dev/video1"),
    ("csi://0?size=1920x1080", "csi", "0"),
    ("picam://1", "picam", "1"),
    ("file:///tmp/a%20b.mp4", "file", "/tmp/a b.mp4"),
    ("clip.mp4", "file", "clip.mp4"),
    ("rtsp://user:pw@cam.local:554/stream?channel=1", "rtsp", "user:pw@cam.local:554/stream?channel=1"),
    ("RTSPS://cam/stream", "rtsp", "cam/stream"),
    ("dir:///tmp/pics?fps=5", "dir", "/tmp/pics"),
    ("demo://?size=64x48&fps=50", "demo", ""),
])
def test_parse_source_uri(uri, scheme, target):
    spec = parse_source_uri(uri)
    assert (spec.scheme, spec.target) == (scheme, target)


def test_all_sources_registered():
    parse_source_uri("demo://")
    assert set(SOURCES.names()) == {"v4l2", "csi", "picam", "file", "rtsp", "dir", "demo"}
    parse_sink_uri("null")
    assert set(SINKS.names()) == {"file", "http", "window", "null"}


def test_unknown_schemes_list_valid_ones():
    with pytest.raises(UserError, match=r"unknown source scheme 'foo://'.*demo://"):
        parse_source_uri("foo://bar")
    with pytest.raises(UserError, match=r"unknown sink scheme 'ftp://'.*http://"):
        parse_sink_uri("ftp://host/x.mp4")


def test_demo_source_moves_and_honours_size():
    src = open_source("demo://?size=64x48&fps=200")
    a, b = src.read(), src.read()
    src.close()
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    with pytest.raises(UserError, match="must look like 640x480"):
        open_source("demo://?size=big")


def test_missing_camera_is_one_clear_error():
    if Path("/dev/video9").exists():
        pytest.skip("/dev/video9 exists here")
    with pytest.raises(UserError, match="not found"):
        open_source("/dev/video9")


def test_picam_without_picamera2():
    if importlib.util.find_spec("picamera2"):
        pytest.skip("picamera2 is installed here")
    with pytest.raises(UserError, match="python3-picamera2"):
        open_source("picam://0")


def test_csi_without_gstreamer():
    if opencv_video_backends()["GStreamer"]:
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(UserError, match="GStreamer"):
        open_source("csi://0")


def test_dir_source_reads_pictures_in_order(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), synthetic_frame(32, 24, seed=i))
    (tmp_path / "notes.txt").write_text("not a picture")
    src = open_source(f"dir://{tmp_path}")
    frames = [src.read() for _ in range(4)]
    assert [f is None for f in frames] == [False, False, False, True]
    assert not src.live
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no picture"):
        open_source(f"dir://{tmp_path / 'empty'}")


def test_file_source_and_loop(make_video):
    path = make_video(frames=5)
    src = open_source(str(path))
    assert sum(src.read() is not None for _ in range(6)) == 5
    src = open_source(f"file://{path}?loop=1")
    assert sum(src.read() is not None for _ in range(8)) == 8
    with pytest.raises(UserError, match="does not exist"):
        open_source("file:///nonexistent/clip.mp4")


def test_grabber_hands_out_the_newest_frame():
    grabber = FrameGrabber(open_source("demo://?size=32x24&fps=200"), timeout_s=5).start()
    try:
        first = grabber.get(timeout=5)
        time.sleep(0.3)  # the camera runs on while we are busy
        newer = grabber.get(timeout=5)
        assert first is not None and newer is not None
        assert newer.index > first.index + 1 and grabber.dropped > 0
        assert first.captured_s < newer.captured_s <= time.perf_counter()
    finally:
        grabber.stop()


def test_grabber_gives_files_every_frame(make_video):
    grabber = FrameGrabber(open_source(str(make_video(frames=7))), timeout_s=5).start()
    got = []
    try:
        while not grabber.ended:
            f = grabber.get(timeout=0.5)
            if f is not None:
                got.append(f.index)
                time.sleep(0.02)  # a slow consumer must not lose frames of a file
    finally:
        grabber.stop()
    assert got == list(range(1, 8)) and grabber.dropped == 0


@pytest.mark.timeout(60)
def test_grabber_gives_up_on_a_stalled_source():
    """Reads block after 3 frames (a hung driver): reconnects with backoff, then SourceLost."""
    log = []
    grabber = FrameGrabber(open_source("demo://?size=32x24&fps=100&stall_after=3"), timeout_s=0.3, retries=2,
                           backoff_s=0.05, log=log.append).start()
    frames = []
    try:
        with pytest.raises(SourceLost, match=r"no frame for 0.3 s.*gave up after 2 reconnect attempts"):
            while True:
                f = grabber.get(timeout=0.1)
                if f is not None:
                    frames.append(f)
    finally:
        grabber.stop()
    assert frames[-1].index == 3  # the newest frame before the stall was delivered (older ones may be dropped)
    assert len(log) == 2 and all("reconnecting" in m for m in log), log
    assert grabber.reconnects == 2


@pytest.mark.timeout(60)
def test_grabber_reconnects_a_frozen_source():
    """The same frame over and over (a frozen driver) counts as a stall and reopens the source."""
    log = []
    grabber = FrameGrabber(open_source("demo://?size=32x24&fps=100&freeze_after=3"), timeout_s=0.3, retries=3,
                           backoff_s=0.05, log=log.append).start()
    try:
        deadline = time.monotonic() + 30
        while grabber.reconnects < 1 and time.monotonic() < deadline:
            grabber.get(timeout=0.1)
    finally:
        grabber.stop()
    assert grabber.reconnects >= 1
    assert any("the same frame for 0.3 s" in m for m in log), log
