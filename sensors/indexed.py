"""Shared machinery of the file-backed sources (datasets, photos, videos, recordings).

:class:`IndexedSource` is a :class:`~sensors.source.SeekableSource` over a list of frames that
is known when the source opens. Subclasses build the list in ``_open`` (calling
:meth:`IndexedSource._set_timestamps`) and load one frame in ``_load(position)``.

What every indexed source shares:

- ``seek(index)``, ``seek_time_ns(t)``, ``position``, ``len()``, ``timestamps_ns``.
- Optional real-time pacing (``pace=on``): frames are released at their recorded spacing on
  the monotonic clock. Gaps longer than :data:`MAX_PACED_GAP_S` play as that long (a recording
  paused for a minute does not stall a replay), and a consumer that stops reading for a while
  (a paused GUI) resumes at the next frame without a catch-up burst.
- ``loop=on``: start again at the first frame instead of ending.
- A frame that cannot be read raises :class:`~sensors.errors.FormatError` naming its file,
  *after* the position moved past it, so a caller may count it and go on.

Also here: small image readers used by several sources (colour PNG/JPEG to RGB, 16-bit depth
PNG) with one-line errors naming the file.
"""
from __future__ import annotations

import abc
import bisect
import os
import re
import time
from typing import Any

import numpy as np

from sensors.errors import ConfigError, FormatError
from sensors.frame import Frame
from sensors.source import Pacer, SeekableSource, SourceURI

#: longest pause between two frames that paced playback reproduces, in seconds
MAX_PACED_GAP_S = 0.5
#: a consumer that reads this much later than a frame was due is taken to have paused
_PAUSE_SLACK_S = 0.25
#: frame period assumed for datasets without per-frame clocks (Kinect v1 and v2 run at 30 Hz)
DATASET_FRAME_PERIOD_NS = 33_333_333

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers by value: ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def read_color_image(path: str | os.PathLike[str]) -> np.ndarray:
    """A colour image file as HxWx3 uint8 RGB (8-bit grey images are expanded, alpha dropped, 16-bit
    colour reduced to 8 bits); a single 16-bit channel (a depth map) is a FormatError."""
    import cv2

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError("colour image is missing", path)
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FormatError("not a readable image (truncated or unknown format)", path)
    if img.dtype == np.uint16:
        if img.ndim == 2:  # one 16-bit channel is a depth or IR map, not a photo
            raise FormatError("colour image expected, found one 16-bit channel (a depth map?)", path)
        img = (img >> 8).astype(np.uint8)  # a 16-bit colour photo: its top 8 bits
    elif img.dtype != np.uint8:
        raise FormatError(f"colour image has unsupported sample type {img.dtype.name}", path)
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    raise FormatError(f"colour image has {img.shape[2]} channels", path)


def read_depth_png(path: str | os.PathLike[str]) -> np.ndarray:
    """A single-channel 16-bit PNG as HxW uint16, exactly as stored (no scaling)."""
    import cv2

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError("depth image is missing", path)
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FormatError("not a readable depth image (truncated or unknown format)", path)
    if img.ndim != 2 or img.dtype != np.uint16:
        shape = "x".join(str(s) for s in img.shape)
        raise FormatError(f"depth image must be one 16-bit channel, got {img.dtype.name} {shape}", path)
    return img


def write_png(path: str | os.PathLike[str], image: np.ndarray, rgb: bool = False) -> None:
    """Write an image losslessly; ``rgb=True`` converts RGB to OpenCV's BGR order first."""
    import cv2

    data = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if rgb else image
    if not cv2.imwrite(os.fspath(path), data):
        raise FormatError("could not write image", path)


class IndexedSource(SeekableSource):
    """A seekable source over frames listed when it opens. See the module docstring."""

    #: default of the ``pace`` option (recordings and videos play in real time by default)
    default_pace: bool = False

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        self._timestamps_ns: list[int] = []
        self._play_offsets_s: list[float] = []
        self._pos = 0
        self._pacer = Pacer(enabled=False)
        self._loop = False
        self._last_read_monotonic: float | None = None

    # -- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def _load(self, position: int) -> Frame:
        """Load the frame at ``position`` (0-based); raise FormatError naming the file."""

    def _close(self) -> None:
        """Release files; nothing to do for sources that open files per frame."""

    # -- helpers for subclasses ---------------------------------------------------------
    def _read_common_options(self, opts: Any) -> None:
        """Read ``pace`` and ``loop`` (call from the subclass constructor before finish())."""
        self._pacer = Pacer(enabled=bool(opts.bool("pace", self.default_pace)))
        self._loop = bool(opts.bool("loop", False))

    def _set_timestamps(self, timestamps_ns: list[int]) -> None:
        """Record every frame's timestamp (non-decreasing) once the index is built."""
        ts = [int(t) for t in timestamps_ns]
        offsets = [0.0]
        for a, b in zip(ts, ts[1:]):
            offsets.append(offsets[-1] + min(max((b - a) / 1e9, 0.0), MAX_PACED_GAP_S))
        self._timestamps_ns = ts
        self._play_offsets_s = offsets if ts else []

    # -- SeekableSource -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._timestamps_ns)

    @property
    def position(self) -> int:
        return self._pos

    @property
    def timestamps_ns(self) -> list[int]:
        """Every frame's timestamp in stream order (a copy)."""
        return list(self._timestamps_ns)

    @property
    def paced(self) -> bool:
        return self._pacer.enabled

    def set_pacing(self, enabled: bool) -> None:
        """Turn real-time pacing on or off (batch tools such as ``convert`` turn it off)."""
        self._pacer.enabled = bool(enabled)
        self._restart_at(self._pos)

    def seek(self, index: int) -> None:
        if not self._opened:
            self.open()
        n = len(self)
        if not 0 <= int(index) < max(n, 1) or n == 0:
            raise ConfigError(f"frame {index} is out of range: {self.uri} has {n} frames (0..{n - 1})")
        self._pos = int(index)
        self._restart_at(self._pos)

    def seek_time_ns(self, t_ns: int) -> int:
        """Seek to the first frame stamped at or after ``t_ns`` (the last frame if none is);
        returns the index sought to. Stamps are the frames' ``timestamp_ns``."""
        if not self._opened:
            self.open()
        if not self._timestamps_ns:
            raise ConfigError(f"{self.uri} has no frames to seek in")
        index = min(bisect.bisect_left(self._timestamps_ns, int(t_ns)), len(self) - 1)
        self.seek(index)
        return index

    def restart_clock(self) -> None:
        self._restart_at(self._pos)

    def _restart_at(self, position: int) -> None:
        if self._play_offsets_s:
            self._pacer.reset(self._play_offsets_s[min(position, len(self._play_offsets_s) - 1)])
        self._last_read_monotonic = None

    def _read(self, timeout_s: float) -> Frame:
        if self._pos >= len(self):
            if not self._loop or len(self) == 0:
                raise EOFError(f"end of {self.uri}")
            self._pos = 0
            self._restart_at(0)
        position = self._pos
        if self._pacer.enabled:
            now = time.monotonic()
            if self._last_read_monotonic is None:
                self._pacer.reset(self._play_offsets_s[position])
            else:
                gap = self._play_offsets_s[position] - self._play_offsets_s[max(position - 1, 0)]
                if now - self._last_read_monotonic > gap + _PAUSE_SLACK_S:
                    self._pacer.reset(self._play_offsets_s[position])  # the consumer paused
            self._pacer.wait(self._play_offsets_s[position], timeout_s)
            self._last_read_monotonic = time.monotonic()
        self._pos = position + 1  # past it even if loading fails: a bad frame is skipped once
        return self._load(position)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"frames": len(self), "seekable": True, "paced": self._pacer.enabled})
        return d
