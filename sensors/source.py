"""The source interface and the URI factory.

A source is opened by :func:`open_source` from a URI ``scheme[:body]``. The body is a
comma-separated list: items of the form ``key=value`` are options, the first other item is
the target (a path, a device index or a serial)::

    virtual:seed=0,subjects=0-9,pace=off
    kinect:012345678912
    webcam:0,calibration=cam.yaml
    images:photos/
    replay:session.mcap,pace=off
    biwi:/data/hpdb,subject=3
    pandora:/data/pandora,split=test
    tum:/data/rgbd_dataset_freiburg1_xyz

A comma or an equals sign inside a path or a value is written with a backslash, ``\\,`` and
``\\=`` (``images:/photos/a\\,b.jpg``); any other backslash is kept as it is. A key given twice is
an error, as is a range of more than :data:`MAX_RANGE_COUNT` numbers.

Every source is a context manager::

    with open_source("virtual:seed=0") as src:
        frame = src.read(timeout_s=1.0)   # TimeoutError if none arrives in time
        for frame in src: ...             # ends cleanly where read() raises EOFError
"""
from __future__ import annotations

import abc
import importlib
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from sensors.errors import ConfigError, SourceLostError
from sensors.frame import Frame

#: scheme -> "module:Class"; the class is imported only when that scheme is opened, so a
#: missing optional driver (pylibfreenect2) affects only its own scheme.
SOURCE_SCHEMES: dict[str, str] = {
    "virtual": "sensors.virtual:VirtualKinect",
    "kinect": "sensors.devices.kinect:KinectSource",
    "webcam": "sensors.devices.webcam:WebcamSource",
    "images": "sensors.datasets.images:ImagesSource",
    "replay": "sensors.recording.replay:ReplaySource",
    "biwi": "sensors.datasets.biwi:BiwiSource",
    "pandora": "sensors.datasets.pandora:PandoraSource",
    "tum": "sensors.datasets.tum:TumSource",
}

#: what the body of each scheme holds, for error messages and --help
SCHEME_USAGE: dict[str, str] = {
    "virtual": "virtual[:seed=S,subjects=A-B,pace=off,...]",
    "kinect": "kinect[:SERIAL]",
    "webcam": "webcam[:INDEX][,calibration=FILE]",
    "images": "images:PATH (a photo, a folder of photos, or a video)",
    "replay": "replay:FILE.mcap[,pace=off]",
    "biwi": "biwi:PATH (hpdb folder or one sequence)",
    "pandora": "pandora:PATH (root or one sequence)",
    "tum": "tum:PATH (a TUM RGB-D folder)",
}

#: the most numbers an ``A-B`` option may span (``subjects=0-999999``): checked before
#: anything is allocated for them
MAX_RANGE_COUNT = 1_000_000

#: characters a path or value writes as ``\\,`` / ``\\=`` (``_split_escaped``, ``_escape``)
_ESCAPABLE = ",="

#: schemes whose target is a file system path that must exist
PATH_SCHEMES = frozenset({"images", "replay", "biwi", "pandora", "tum"})


@dataclass(frozen=True)
class SourceURI:
    """A parsed source URI."""

    scheme: str
    target: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        """The URI as written, escaped so that it parses back to the same thing."""
        parts = ([_escape(self.target)] if self.target else []) + [f"{k}={_escape(v)}" for k, v in self.options.items()]
        return self.scheme + (":" + ",".join(parts) if parts else "")


def _escape(text: str) -> str:
    for ch in _ESCAPABLE:
        text = text.replace(ch, "\\" + ch)
    return text


def _split_escaped(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    """``text`` split at each ``sep`` not preceded by a backslash (at most ``maxsplit`` times);
    the escapes stay in the parts (``_unescape`` removes them)."""
    parts, start, i = [], 0, 0
    while i < len(text) and (maxsplit < 0 or len(parts) < maxsplit):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            i += 2
            continue
        if text[i] == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    return [*parts, text[start:]]


def _unescape(text: str) -> str:
    for ch in _ESCAPABLE:
        text = text.replace("\\" + ch, ch)
    return text


def parse_uri(uri: str) -> SourceURI:
    """Split ``scheme[:body]`` into scheme, target and options; raise ConfigError when malformed."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"empty source URI; expected one of: {', '.join(SCHEME_USAGE.values())}")
    scheme, _, body = uri.strip().partition(":")
    scheme = scheme.lower()
    if scheme not in SOURCE_SCHEMES:
        raise ConfigError(
            f"unknown source scheme {scheme!r} in {uri!r}; expected one of: {', '.join(SOURCE_SCHEMES)}"
        )
    target: str | None = None
    options: dict[str, str] = {}
    for item in _split_escaped(body, ",") if body else []:
        key, *value = _split_escaped(item, "=", maxsplit=1)
        if value and key.strip().isidentifier():
            key = key.strip().lower()
            if key in options:
                raise ConfigError(f"option {key}= is given twice in source URI {uri!r}; give it once")
            options[key] = _unescape(value[0].strip())
        elif target is None and item.strip():
            target = _unescape(item.strip())
        elif item.strip():
            raise ConfigError(f"unexpected item {item!r} in source URI {uri!r}; expected {SCHEME_USAGE[scheme]}; "
                              f"a comma inside a path is written \\,")
    if "path" in options and target is None:
        target = options.pop("path")
    if scheme in PATH_SCHEMES:
        if not target:
            raise ConfigError(f"source {uri!r} needs a path; expected {SCHEME_USAGE[scheme]}")
        target = os.path.expanduser(target)
        if not os.path.exists(target):
            raise ConfigError(f"source {uri!r}: path {target!r} does not exist; expected {SCHEME_USAGE[scheme]}")
    return SourceURI(scheme, target, options)


def _finite(s: str) -> float:
    value = float(s)
    if not math.isfinite(value):  # "nan" and "inf" parse, and pass every range check
        raise ValueError(s)
    return value


def _on_off(s: str) -> bool:
    s = s.lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(s)


class Options:
    """Typed access to a URI's options that reports unknown keys and bad values clearly."""

    def __init__(self, uri: SourceURI) -> None:
        self._uri = uri
        self._left = dict(uri.options)

    def _get(self, key: str, default: Any, convert: Callable[[str], Any], what: str) -> Any:
        if key not in self._left:
            return default
        raw = self._left.pop(key)
        try:
            return convert(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"option {key}={raw!r} in source {self._uri} must be {what}") from None

    def str(self, key: str, default: str | None = None) -> str | None:
        return self._get(key, default, str, "text")

    def int(self, key: str, default: int | None = None) -> int | None:
        return self._get(key, default, int, "an integer")

    def float(self, key: str, default: float | None = None) -> float | None:
        return self._get(key, default, _finite, "a finite number")

    def bool(self, key: str, default: bool = False) -> bool:
        return self._get(key, default, _on_off, "on or off")

    def switch(self, key: str, default: str, levels: tuple[str, ...]) -> str:
        """``"on"`` / ``"off"`` (spelt as :meth:`bool` takes them) or one of the further ``levels``."""

        def conv(s: str) -> str:
            s = s.lower()
            return s if s in levels else ("on" if _on_off(s) else "off")

        return self._get(key, default, conv, ", ".join(("on", "off", *levels)))

    def int_range(self, key: str, default: tuple[int, int] | None = None) -> tuple[int, int] | None:
        """``A-B`` (inclusive) or a single ``K``."""

        def conv(s: str) -> tuple[int, int]:
            a, dash, b = s.partition("-")
            lo, hi = int(a), int(b) if dash else int(a)
            if hi < lo or hi - lo + 1 > MAX_RANGE_COUNT:
                raise ValueError(s)
            return lo, hi

        return self._get(key, default, conv, f"a range A-B (B >= A, at most {MAX_RANGE_COUNT} numbers) or a number")

    def finish(self) -> None:
        """Call after reading every option: unknown options are an error, not silently ignored."""
        if self._left:
            raise ConfigError(f"unknown option(s) {', '.join(sorted(self._left))} for source {self._uri}")


#: a live source's read waits at most this long past the moment the source counts as lost:
#: sources that notice the loss themselves report it first, with their own reason, and a
#: consumer back from a pause gets a fair chance at a frame before the source is declared lost
LIVE_WAIT_SLACK_S = 0.25


class Source(abc.ABC):
    """Base of every source: open / read(timeout_s) / close, a context manager and an iterator.

    Subclasses implement :meth:`_open`, :meth:`_read` and :meth:`_close`. ``read`` returns the
    next :class:`Frame`, raises ``TimeoutError`` when none arrives within ``timeout_s``, and
    ``EOFError`` at the end of a recording or dataset. Live sources (``is_live``) that deliver
    nothing for ``lost_after_s`` seconds raise :class:`SourceLostError`; a read never waits more
    than :data:`LIVE_WAIT_SLACK_S` past that moment, so a lost source is declared within
    ``lost_after_s`` + 0.25 s of its last frame whatever the ``timeout_s`` of the reads.
    """

    #: True for sensors (and paced simulations of one) where frames arrive on their own clock
    is_live: bool = False
    #: seconds without a frame after which a live source is declared lost
    lost_after_s: float = 2.0

    def __init__(self, uri: SourceURI) -> None:
        self.uri = uri
        self._opened = False
        self._closed = False
        self._last_frame_monotonic = 0.0
        self._lock = threading.Lock()

    @classmethod
    def check_options(cls, uri: SourceURI) -> None:
        """ConfigError unless ``uri``'s options are valid, opening nothing (:func:`check_uri`).
        Constructing a source only reads its options; override where it does more."""
        cls(uri)

    # -- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None:
        """Acquire the device or file. Raise SensorError / FormatError with a clear message."""

    @abc.abstractmethod
    def _read(self, timeout_s: float) -> Frame:
        """Return the next frame, or raise TimeoutError / EOFError / a FacedepthError."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release everything; must be safe to call after a failed or partial open."""

    # -- public API ---------------------------------------------------------------------
    def open(self) -> "Source":
        if not self._opened:
            self._open()
            self._opened = True
            self._last_frame_monotonic = time.monotonic()
        return self

    def read(self, timeout_s: float = 1.0) -> Frame:
        if self._closed:
            raise EOFError(f"source {self.uri} is closed")
        if not self._opened:
            self.open()
        wait_s = timeout_s
        if self.is_live:  # never wait long past the moment the source counts as lost
            lost_in_s = self._last_frame_monotonic + self.lost_after_s - time.monotonic()
            wait_s = min(timeout_s, max(lost_in_s, 0.0) + LIVE_WAIT_SLACK_S)
        try:
            frame = self._read(wait_s)
        except TimeoutError:
            if self.is_live and time.monotonic() - self._last_frame_monotonic > self.lost_after_s:
                raise SourceLostError(
                    f"no frame for {self.lost_after_s:g} s: the sensor was unplugged or stopped",
                    path=str(self.uri),
                ) from None
            raise
        self._last_frame_monotonic = time.monotonic()
        return frame

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def restart_clock(self) -> None:
        """After a pause: a paced source restarts its clock so the next frame is due now,
        instead of rushing to catch up. Sources without pacing ignore it."""

    def describe(self) -> dict[str, Any]:
        """What a report records about this source (override to add camera models etc.)."""
        return {"uri": str(self.uri), "live": self.is_live}

    def __enter__(self) -> "Source":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the end of the stream; waits as long as lost_after_s allows per frame."""
        while True:
            try:
                yield self.read(timeout_s=max(self.lost_after_s, 0.1) + 0.5)
            except EOFError:
                return
            except TimeoutError:
                if not self.is_live:
                    raise
                # a live source that times out keeps trying until it is declared lost


class SeekableSource(Source):
    """A source with a known number of frames that can jump to any of them (recordings, datasets)."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of frames."""

    @abc.abstractmethod
    def seek(self, index: int) -> None:
        """Make the next read() return frame ``index`` (0-based position in the stream)."""

    @property
    @abc.abstractmethod
    def position(self) -> int:
        """Position of the next frame read() will return."""


def seekable_length(src: Source) -> int | None:
    """How many frames ``src`` can jump between with ``seek(index)``: a SeekableSource's length,
    or the length of a finite stream that can make any of its frames on demand (the virtual
    Kinect with ``frames=N``, its ``seekable_frames``); None for a source that cannot seek."""
    if isinstance(src, SeekableSource):
        return len(src)
    return getattr(src, "seekable_frames", None)


class Pacer:
    """Holds a stream to a frame rate (or to recorded timestamps), never running ahead.

    ``wait(target_offset_s)`` sleeps until ``start + target_offset_s`` on the monotonic clock.
    ``reset()`` restarts the clock (after a seek or a pause).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._t0 = time.monotonic()
        self._offset0 = 0.0

    def reset(self, offset_s: float = 0.0) -> None:
        self._t0 = time.monotonic()
        self._offset0 = offset_s

    def wait(self, offset_s: float, timeout_s: float) -> None:
        """Sleep until the frame at ``offset_s`` is due; TimeoutError if that is beyond timeout_s."""
        if not self.enabled:
            return
        delay = self._t0 + (offset_s - self._offset0) - time.monotonic()
        if delay > timeout_s:
            time.sleep(max(timeout_s, 0.0))
            raise TimeoutError("next frame not due within the timeout")
        if delay > 0:
            time.sleep(delay)


def source_class(scheme: str) -> type[Source]:
    """Import and return the class serving ``scheme``."""
    module_name, _, class_name = SOURCE_SCHEMES[scheme].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def check_uri(uri: str | SourceURI) -> SourceURI:
    """Parse ``uri`` and check its options by constructing its source, which opens nothing (no
    device, no file read): a command checks every URI it was given before any work, so a bad
    option of its last source is not found after an hour spent on the first. Raises what
    :func:`open_source` raises for the same mistakes (ConfigError, FormatError)."""
    parsed = uri if isinstance(uri, SourceURI) else parse_uri(uri)
    source_class(parsed.scheme).check_options(parsed)
    return parsed


def open_source(uri: str | SourceURI) -> Source:
    """Parse ``uri``, construct its source and open it. The caller closes it (or uses ``with``)."""
    parsed = uri if isinstance(uri, SourceURI) else parse_uri(uri)
    source = source_class(parsed.scheme)(parsed)
    try:
        source.open()
    except BaseException:
        source.close()
        raise
    return source
