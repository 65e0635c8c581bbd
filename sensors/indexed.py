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
  *after* the position moved past it, so a caller may count it and go on. A stretch of frames
  the file lost (a damaged recording) raises :class:`~sensors.errors.FramesLostError` once,
  just before the frame after it.

Also here: small image readers used by several sources (colour PNG/JPEG to RGB, 16-bit depth
PNG) with one-line errors naming the file.
"""
from __future__ import annotations

import abc
import bisect
import contextlib
import os
import re
import sys
import tempfile
import threading
import time
from typing import Any, Iterator

import numpy as np

from sensors.errors import ConfigError, FormatError, FramesLostError
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


def _jpeg_damage(data: bytes) -> str | None:
    """Why a JPEG's bytes are incomplete (None when its segments run to the end-of-image marker).

    Walks the marker segments by their lengths (an EXIF thumbnail's own markers sit inside its
    APP1 segment and are skipped) and the entropy-coded data after each start-of-scan, where a
    0xFF byte is followed by 0x00 (stuffing) or a restart marker until the next real marker.
    """
    n, pos = len(data), 2
    while True:
        while pos < n and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= n:
            return "truncated JPEG (the file ends before its end-of-image marker)"
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            continue
        if pos + 2 > n:
            return "truncated JPEG (the file ends inside a segment header)"
        end = pos + int.from_bytes(data[pos:pos + 2], "big")
        if end > n:
            return "truncated JPEG (the file ends inside a segment)"
        pos = end
        if marker == 0xDA:  # start of scan: entropy-coded data until the next real marker
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    return "truncated JPEG (the file ends inside the image data)"
                following = data[pos + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                    pos += 1 if following == 0xFF else 2
                    continue
                break


def _png_damage(data: bytes) -> str | None:
    """Why a PNG's bytes are incomplete or damaged (None when its chunks run to IEND with good CRCs)."""
    import zlib

    n, pos = len(data), 8
    while True:
        if pos + 8 > n:
            return "truncated PNG (the file ends before its IEND chunk)"
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if pos + 12 + length > n:
            return "truncated PNG (the file ends inside a chunk)"
        if zlib.crc32(data[pos + 4:pos + 8 + length]) != int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big"):
            return f"damaged PNG (chunk {kind.decode('latin-1')!r} fails its checksum)"
        if kind == b"IEND":
            return None
        pos += 12 + length


#: one decode at a time may borrow file descriptor 2 (see :func:`quiet_codecs`)
_STDERR_LOCK = threading.Lock()
#: what libjpeg, libpng, FFmpeg and OpenCV's video back ends print on damaged data (kept off the
#: console); other text is passed on
_CODEC_CHATTER = re.compile(r"^(libpng (error|warning)|Corrupt JPEG data|Premature end of JPEG|Invalid SOS"
                            r"|Warning: unknown JFIF|Unsupported marker|Bogus|\[[^]]*@ ?0x[0-9a-fA-F]+\]"
                            r"|\[ ?(WARN|ERROR|INFO):[^]]*\] global )",  # the last: OpenCV's own log lines
                            re.IGNORECASE)


class _CodecComplaints:
    """What :func:`quiet_codecs` caught: the decoders' complaints, first one first."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @property
    def first(self) -> str | None:
        return self.lines[0] if self.lines else None


@contextlib.contextmanager
def quiet_codecs() -> Iterator[_CodecComplaints]:
    """Keep libjpeg's, libpng's and FFmpeg's warnings, which they print straight onto file
    descriptor 2, off the console while decoding; yields what they said, for the error message.

    fd 2 is borrowed only for the block, one block at a time; anything else written there
    meanwhile (another thread's message) is passed on afterwards.
    """
    caught = _CodecComplaints()
    with _STDERR_LOCK:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            saved: int | None = os.dup(2)
        except (OSError, ValueError):  # no usable fd 2 (an embedded interpreter): decode as is
            saved = None
        if saved is None:
            yield caught
            return
        with tempfile.TemporaryFile() as sink:
            try:
                os.dup2(sink.fileno(), 2)
                yield caught
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read().decode("utf-8", "replace")
                others = []
                for line in text.splitlines():
                    (caught.lines if _CODEC_CHATTER.match(line.strip()) else others).append(line.strip())
                others = [ln for ln in others if ln]
                if others and sys.stderr is not None:
                    sys.stderr.write("\n".join(others) + "\n")
                # FFmpeg prefixes its lines with "[codec @ 0x...]": the words after it say what broke
                caught.lines = [re.sub(r"^\[[^]]*@ ?0x[0-9a-fA-F]+\]\s*", "", ln) for ln in caught.lines]


def _load_image(path: str | os.PathLike[str], what: str, kind: str) -> np.ndarray:
    """An image file decoded as stored (any depth, any channels); FormatError naming the file when it
    is missing, unreadable, truncated (JPEG, PNG: checked before decoding) or not an image."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(f"{what} is missing", path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FormatError(f"{what} cannot be read ({exc.strerror})", path) from None
    damage = "the file is empty" if not data else None
    if data[:2] == b"\xff\xd8":
        damage = _jpeg_damage(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        damage = _png_damage(data)
    if damage:
        raise FormatError(f"not a readable {kind}: {damage}", path)
    import cv2

    with quiet_codecs() as complaints:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        why = f" ({complaints.first})" if complaints.first else " (truncated or unknown format)"
        raise FormatError(f"not a readable {kind}{why}", path)
    return img


def read_color_image(path: str | os.PathLike[str]) -> np.ndarray:
    """A colour image file as HxWx3 uint8 RGB (8-bit grey images are expanded, alpha dropped, 16-bit
    colour reduced to 8 bits); a single 16-bit channel (a depth map) is a FormatError.

    A truncated JPEG or PNG (a half-copied photo) is a FormatError saying so, never a grey-padded
    picture; the codecs' own warnings stay off the console.
    """
    import cv2

    path = os.fspath(path)
    img = _load_image(path, "colour image", "image")
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
    path = os.fspath(path)
    img = _load_image(path, "depth image", "depth image")
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
        self._lost: dict[int, FramesLostError] = {}  # position -> the frames lost just before it
        self._lost_told: int | None = None  # the position whose loss was reported last

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

    def _set_losses(self, lost: dict[int, FramesLostError]) -> None:
        """Stretches of frames the file lost (damage): each is raised once, as the stream reaches
        the frame after it, and the next read delivers that frame."""
        self._lost = dict(lost)

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
        self._lost_told = self._pos  # a seek lands on the frame: the loss behind it is not news
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
        lost = self._lost.get(position)
        if lost is not None and self._lost_told != position:
            self._lost_told = position
            raise FramesLostError(lost.message, lost.path, frames=lost.frames, span_s=lost.span_s)
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
        self._lost_told = None
        return self._load(position)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"frames": len(self), "seekable": True, "paced": self._pacer.enabled})
        return d
