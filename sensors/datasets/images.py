"""Photos and videos: ``images:PATH`` (one photo, a folder of photos, or a video file).

How users try the model on their own pictures. Frames are colour only (no depth, no depth
camera); the head must be found in the colour image.

- A folder plays its images (``.png .jpg .jpeg .bmp .tif .tiff .webp .ppm .pgm``) in name
  order, numbers compared by value (``img2`` before ``img10``); other files are ignored.
- A video (any file OpenCV can decode that is not an image: ``.mp4 .avi .mov .mkv .webm`` ...)
  plays at its own frame rate (``pace=off`` for as fast as possible); its length is the frame
  count the container reports. A file that holds fewer (truncated, damaged) raises one
  :class:`~sensors.errors.FramesLostError` naming how many were lost, then ends.
- Intrinsics: ``calibration=FILE`` (OpenCV camera matrix, YAML or JSON, scaled to the image
  size), else an assumed horizontal field of view, ``fov=DEGREES`` (default 60; see
  :mod:`sensors.devices.calibration`). ``describe()`` says which.
- Seekable (``seek``, ``seek_time_ns``); ``loop=on`` starts over at the end.

Timestamps: photo i is stamped i/30 s; video frame i is stamped i / fps.
"""
from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from sensors.devices.calibration import ColorCameraModel
from sensors.errors import FormatError, FramesLostError
from sensors.frame import Frame
from sensors.indexed import (
    DATASET_FRAME_PERIOD_NS, IMAGE_EXTENSIONS, IndexedSource, natural_key, quiet_codecs, read_color_image,
)
from sensors.source import Options, SourceURI


class ImagesSource(IndexedSource):
    """One photo, a folder of photos in name order, or a video file (see the module docstring)."""

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        self.path = os.fspath(uri.target or "")
        self.kind = "folder" if os.path.isdir(self.path) else (
            "photo" if self.path.lower().endswith(IMAGE_EXTENSIONS) else "video")
        self.default_pace = self.kind == "video"
        opts = Options(uri)
        self.camera_model = ColorCameraModel(opts.str("calibration", None), opts.float("fov", None))
        self._read_common_options(opts)
        opts.finish()
        self._files: list[str] = []
        self._cap: Any = None
        self._cap_next = 0  # the frame the decoder delivers next
        self._cap_lock = threading.Lock()
        self.fps = 30.0

    def _open(self) -> None:
        if self.kind == "folder":
            names = [n for n in os.listdir(self.path)
                     if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(self.path, n))]
            if not names:
                raise FormatError(f"no images in this folder (looked for {' '.join(IMAGE_EXTENSIONS)})", self.path)
            self._files = [os.path.join(self.path, n) for n in sorted(names, key=natural_key)]
            self._set_timestamps([i * DATASET_FRAME_PERIOD_NS for i in range(len(self._files))])
        elif self.kind == "photo":
            self._files = [self.path]
            self._set_timestamps([0])
        else:
            import cv2

            with quiet_codecs():  # FFmpeg's words on a file it cannot open add nothing to ours
                cap = cv2.VideoCapture(self.path)
            if not cap.isOpened():
                cap.release()
                raise FormatError("not an image, folder or video OpenCV can open", self.path)
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            if count <= 0:
                cap.release()
                raise FormatError("video reports no frames", self.path)
            self.fps = fps if 0.5 < fps < 1000 else 30.0
            self._cap = cap
            self._cap_next = 0
            self._set_timestamps([int(round(i * 1e9 / self.fps)) for i in range(count)])

    def _close(self) -> None:
        with self._cap_lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None

    def _video_frame(self, position: int) -> np.ndarray:
        import cv2

        with self._cap_lock:
            if self._cap is None:
                raise EOFError(f"{self.uri} is closed")
            with quiet_codecs() as complaints:  # FFmpeg's complaints about a damaged file: in the message
                if position != self._cap_next:
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, position)
                ok, bgr = self._cap.read()
            self._cap_next = position + 1
        if not ok or bgr is None:
            # the container promised more frames than the file holds (a truncated or damaged
            # file): the rest are lost, said once, and the stream ends here
            promised = len(self._timestamps_ns)
            self._timestamps_ns = self._timestamps_ns[:position]
            self._play_offsets_s = self._play_offsets_s[:position]
            lost = promised - position
            why = f"; the decoder says: {complaints.first}" if complaints.first else ""
            raise FramesLostError(f"video ends at frame {position} of the {promised} its container lists: "
                                  f"{lost} frames ({lost / self.fps:.2f} s) lost (truncated or damaged file{why})",
                                  self.path, frames=lost, span_s=lost / self.fps)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _load(self, position: int) -> Frame:
        if self.kind == "video":
            color = self._video_frame(position)
            name = f"{os.path.basename(self.path)}#{position}"
        else:
            color = read_color_image(self._files[position])
            name = os.path.basename(self._files[position])
        h, w = color.shape[:2]
        return Frame(index=position, timestamp_ns=self._timestamps_ns[position], color=color,
                     color_camera=self.camera_model.for_size(w, h), source=f"images:{name}")

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"kind": self.kind, **self.camera_model.describe()})
        if self.kind == "video":
            d["fps"] = self.fps
        return d
