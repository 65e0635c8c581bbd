"""The headless streaming pipeline: source -> head localisation and crop -> generator(s) (ONNX)
-> metrics -> verification -> result. No Qt here: the GUI and the headless run are views of it.

Two ways to drive it:

- ``process(frame)`` / ``step()``: synchronous, one frame at a time (tests, datasets, reports);
- ``start()`` ... ``latest()`` ... ``stop()``: a capture thread and an inference thread, each
  handing over only the newest item through a one-slot :class:`~app.mailbox.Mailbox`, so
  latency never builds up when inference is slower than the sensor (drops are counted).
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from app.mailbox import Mailbox
from models.metrics import percentile_summary
from sensors.crop import CropConfig, FaceCrop, crop_face
from sensors.errors import FacedepthError, FormatError, SourceLostError
from sensors.frame import Frame
from sensors.locate.locator import HeadLocation, HeadLocator
from sensors.source import SeekableSource, Source

STAGES = ("read", "locate", "crop", "infer", "score")
#: a live source's read() that has not returned this long after max(read timeout, lost_after_s)
#: is hung (a driver call that ignores its timeout): the stream ends with SourceLostError
HUNG_READ_GRACE_S = 0.2


class Generator(Protocol):
    """What the pipeline needs of a depth generator (models.generator.runtime.DepthGenerator)."""

    name: str
    crop_config_dict: Mapping[str, Any]

    def predict(self, color: np.ndarray) -> np.ndarray: ...


class Scorer(Protocol):
    """What the pipeline needs of a verifier (models.verifier.runtime.Verifier). A verifier may also
    have ``crop_config_dict``, the crop geometry it was trained on: a generator whose crops have
    another window or depth range is then not scored (its scores would mean nothing)."""

    threshold: float

    def score(self, a: np.ndarray, b: np.ndarray) -> float: ...


@dataclass(frozen=True, eq=False)
class ModelResult:
    """One generator's output on one frame."""

    name: str
    crop: FaceCrop
    pred8: np.ndarray                      # (S, S) uint8 predicted levels, 0 = background
    metrics: Mapping[str, float] | None    # vs the sensor depth crop (whole-crop and face-region
                                           # metrics, models.metrics); None: no depth or too few pixels
    verification: float | None             # verifier score, predicted vs true depth of this frame
    enrolled: float | None = None          # verifier score, predicted vs the enrolled reference

    @property
    def true8(self) -> np.ndarray | None:
        return self.crop.depth8()


@dataclass(frozen=True, eq=False)
class FrameResult:
    """Everything the views need about one processed frame."""

    frame: Frame
    head: HeadLocation | None              # None: no face in this frame
    models: tuple[ModelResult, ...]        # in the order the generators were given; empty if no face
    timings_ms: Mapping[str, float]        # per stage (STAGES) and "total"
    latency_ms: float                      # capture -> result
    dropped: int                           # frames dropped before this one (running count)

    @property
    def index(self) -> int:
        return self.frame.index

    @property
    def has_face(self) -> bool:
        return self.head is not None


@dataclass(frozen=True)
class PipelineConfig:
    """``lossless``: in threaded mode, the capture thread waits for the inference thread before
    reading the next frame, so no frame is dropped; None (default) means "when the source is
    not live" (recordings and datasets are processed frame by frame, sensors drop the stale)."""

    read_timeout_s: float = 1.0
    metrics_window: int = 30
    lossless: bool | None = None


class Pipeline:
    """Runs frames through localisation, crop, the generators, metrics and verification."""

    def __init__(
        self,
        source: Source,
        generators: Sequence[Generator],
        locator: HeadLocator | None = None,
        verifier: Scorer | None = None,
        config: PipelineConfig = PipelineConfig(),
    ) -> None:
        if not generators:
            raise ValueError("the pipeline needs at least one generator")
        self.source = source
        self.generators = list(generators)
        if locator is None:
            from models.refiner.runtime import default_locator

            locator = default_locator(smoothing=source.is_live)
        self.locator = locator
        self.verifier = verifier  # fixed for the pipeline's life: another verifier means another pipeline
        self.config = config
        self.enrolment: Any = None  # models.verifier.runtime.Enrolment, set by the app
        self._crop_configs = [CropConfig.from_dict(dict(g.crop_config_dict)) for g in self.generators]
        # the crop geometries the verifier was trained on (all of them when it does not say)
        v_crop = getattr(verifier, "crop_config_dict", None)
        v_cfg = CropConfig.from_dict(dict(v_crop)) if v_crop else None
        self._verifiable = {c: verifier is not None and (v_cfg is None or v_cfg.same_pixels(c))
                            for c in self._crop_configs}
        self.on_result: list[Callable[[FrameResult], None]] = []  # called on the inference thread
        #: called on the capture thread with each unreadable frame (or lost stretch) of a file a
        #: threaded run steps over; a live source's FormatError still ends the stream
        self.on_skipped: list[Callable[[FormatError], None]] = []
        self.frames_skipped = 0
        # threading state
        self._frames: Mailbox[tuple[Frame, int, float]] = Mailbox()
        self._results: Mailbox[FrameResult] = Mailbox()
        self._latest: FrameResult | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._step_requests = 0
        self._seek_to: int | None = None
        self._control = threading.Lock()
        self.error: FacedepthError | None = None
        self.finished = threading.Event()  # end of stream or error
        self.frames_read = 0
        self.frames_processed = 0
        self._read_started: float | None = None  # monotonic time the capture thread's read began
        self._read_hung = False  # the capture thread is blocked in a read that ignored its timeout
        self._dropped_before = 0  # drops of earlier start()..stop() runs (each run has fresh mailboxes)

    # -- synchronous use -----------------------------------------------------------------
    def process(self, frame: Frame, read_ms: float = 0.0, captured_ns: int | None = None) -> FrameResult:
        """Locate, crop, predict, score one frame."""
        t = {"read": read_ms}
        t0 = time.perf_counter()
        head = self.locator.locate(frame)
        t1 = time.perf_counter()
        t["locate"] = (t1 - t0) * 1e3
        crops: list[FaceCrop] = []
        if head is not None:
            cache: dict[CropConfig, FaceCrop] = {}
            for cfg in self._crop_configs:
                if cfg not in cache:
                    cache[cfg] = crop_face(frame, head.center_color_mm, cfg)
                crops.append(cache[cfg])
        t2 = time.perf_counter()
        t["crop"] = (t2 - t1) * 1e3
        preds = [g.predict(c.color) for g, c in zip(self.generators, crops)]
        t3 = time.perf_counter()
        t["infer"] = (t3 - t2) * 1e3
        results = tuple(self._score(g, c, p) for g, c, p in zip(self.generators, crops, preds))
        t4 = time.perf_counter()
        t["score"] = (t4 - t3) * 1e3
        t["total"] = sum(t[s] for s in STAGES)
        captured = captured_ns if captured_ns is not None else time.monotonic_ns()
        result = FrameResult(
            frame=frame, head=head, models=results, timings_ms=t,
            latency_ms=(time.monotonic_ns() - captured) / 1e6, dropped=self.dropped,
        )
        self.frames_processed += 1
        return result

    def _score(self, generator: Generator, crop: FaceCrop, pred8: np.ndarray) -> ModelResult:
        from models.metrics import depth_metrics

        true8 = crop.depth8()
        metrics = None
        verification = None
        verify = self._verifiable[crop.config]
        if true8 is not None:
            # face metrics in the renderer's face mask where the frame has one, else the fallback region
            metrics = depth_metrics(pred8, true8, crop.distance_mm, crop.config.half_range_mm,
                                    face_mask=crop.face_mask)
            if verify and metrics is not None:
                verification = float(self.verifier.score(pred8, true8))
        enrolled = None
        if verify and self.enrolment is not None:
            enrolled = float(self.enrolment.score(self.verifier, pred8))
        return ModelResult(getattr(generator, "name", "model"), crop, pred8, metrics, verification, enrolled)

    def step(self, timeout_s: float | None = None) -> FrameResult:
        """Read the next frame and process it (TimeoutError / EOFError as the source raises)."""
        t0 = time.perf_counter()
        frame = self.source.read(self.config.read_timeout_s if timeout_s is None else timeout_s)
        captured = _capture_ns(self.source, frame)
        read_ms = (time.perf_counter() - t0) * 1e3
        self.frames_read += 1
        return self.process(frame, read_ms, captured)

    # -- threaded use --------------------------------------------------------------------
    def start(self) -> None:
        """Start the capture and inference threads."""
        if self._threads:
            return
        self._stop.clear()
        self.finished.clear()
        self._read_hung = False
        self._threads = [
            threading.Thread(target=self._capture_loop, name="facedepth-capture", daemon=True),
            threading.Thread(target=self._inference_loop, name="facedepth-inference", daemon=True),
        ]
        for th in self._threads:
            th.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop both threads (within ``timeout_s``); the source stays open for the caller to close."""
        self._stop.set()
        self._frames.close()
        deadline = time.monotonic() + timeout_s
        for th in self._threads:
            if self._read_hung and th.name == "facedepth-capture":
                continue  # blocked in the driver: a daemon thread, left behind rather than waited for
            th.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        self._dropped_before += self._frames.dropped
        self._frames = Mailbox()
        self._results = Mailbox()

    @property
    def running(self) -> bool:
        return any(th.is_alive() for th in self._threads)

    def latest(self) -> FrameResult | None:
        """The newest result (never blocks); the same object until a newer one arrives."""
        return self._latest

    def next_result(self, timeout_s: float) -> FrameResult:
        """Wait for a result newer than the last one taken (TimeoutError, or EOFError at the end)."""
        return self._results.get(timeout_s)

    @property
    def dropped(self) -> int:
        """Frames the inference thread never saw because a newer one replaced them (over every
        start()..stop() run of this pipeline, so it can be read after stop())."""
        return self._dropped_before + self._frames.dropped

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self.source.restart_clock()
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def request_step(self) -> None:
        """While paused: read and process exactly one more frame."""
        with self._control:
            self._step_requests += 1

    def seek(self, index: int) -> None:
        """Jump to frame ``index`` (seekable sources); applied by the capture thread."""
        if not isinstance(self.source, SeekableSource):
            raise FacedepthError(f"source {self.source.uri} cannot seek")
        with self._control:
            self._seek_to = int(index)
            if self.paused:
                self._step_requests += 1  # show the frame sought to

    def _capture_loop(self) -> None:
        src = self.source
        lossless = not src.is_live if self.config.lossless is None else self.config.lossless
        try:
            while not self._stop.is_set():
                if lossless and not self._frames.wait_empty(0.05):
                    continue
                with self._control:
                    seek_to, self._seek_to = self._seek_to, None
                    if seek_to is not None:
                        src.seek(seek_to)  # type: ignore[attr-defined]
                    may_read = not self._paused.is_set() or self._step_requests > 0
                    if may_read and self._paused.is_set():
                        self._step_requests -= 1
                if not may_read:
                    time.sleep(0.01)
                    continue
                t0 = time.perf_counter()
                self._read_started = time.monotonic()
                try:
                    frame = src.read(self.config.read_timeout_s)
                except TimeoutError:
                    continue
                except FormatError as exc:
                    if src.is_live:
                        raise
                    # a bad frame or a lost stretch of a file: the file reader has moved past it
                    self.frames_skipped += getattr(exc, "frames", 1)
                    for callback in list(self.on_skipped):
                        callback(exc)
                    continue
                finally:
                    self._read_started = None
                captured = _capture_ns(src, frame)
                self.frames_read += 1
                self._frames.put((frame, captured, (time.perf_counter() - t0) * 1e3))
        except EOFError:
            pass
        except FacedepthError as exc:
            self.error = exc
        except Exception as exc:  # a bug or a library failure must end the stream visibly, not silently
            self.error = _unexpected(exc)
        finally:
            self._frames.close()

    def _inference_loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    frame, captured, read_ms = self._frames.get(timeout_s=0.1)  # also the hung-read check rate
                except TimeoutError:
                    self._check_hung_read()
                    continue
                result = self.process(frame, read_ms, captured)
                self._latest = result
                self._results.put(result)
                for callback in list(self.on_result):
                    callback(result)
        except EOFError:
            pass
        except FacedepthError as exc:
            self.error = exc
        except Exception as exc:  # a bug or a library failure must end the stream visibly, not silently
            self.error = _unexpected(exc)
        finally:
            self._results.close()
            self.finished.set()


    def _check_hung_read(self) -> None:
        """End the stream when a live source's read() overran its timeout and lost_after_s (the
        capture thread stays blocked in the driver, a daemon thread; everything else stops)."""
        started = self._read_started
        if started is None or not self.source.is_live:
            return
        limit_s = max(self.config.read_timeout_s, self.source.lost_after_s) + HUNG_READ_GRACE_S
        if time.monotonic() - started > limit_s:
            self._read_hung = True
            raise SourceLostError(f"the source stopped responding: a read has not returned for {limit_s:g} s",
                                  path=str(self.source.uri))


def _unexpected(exc: Exception) -> FacedepthError:
    """An exception no stage turned into a FacedepthError, as one (traceback on stderr)."""
    traceback.print_exception(exc, file=sys.stderr)
    err = FacedepthError(f"the pipeline stopped on an unexpected error: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def _capture_ns(source: Source, frame: Frame) -> int:
    """When the frame was captured on the monotonic clock: the frame's own stamp for live
    sources (taken at capture), else now (recordings and datasets carry recorded times)."""
    now = time.monotonic_ns()
    if source.is_live and 0 < frame.timestamp_ns <= now and now - frame.timestamp_ns < 10_000_000_000:
        return frame.timestamp_ns
    return now


@dataclass
class LatencyStats:
    """Collects per-frame values and reports percentiles."""

    values: list[float] = field(default_factory=list)

    def add(self, v: float) -> None:
        self.values.append(float(v))

    def percentiles(self) -> dict[str, float | None]:
        return percentile_summary(self.values)
