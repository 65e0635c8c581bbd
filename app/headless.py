"""``launch.py run --headless``: process a source without a window and write a JSON report."""
from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.pipeline import FrameResult, LatencyStats, Pipeline
from app.run_config import RunConfig
from models.metrics import FACE_REGION_RULES, SUMMARY_KEYS
from sensors.errors import FacedepthError, FormatError, FramesLostError
from sensors.source import open_source

ROOT = Path(__file__).resolve().parents[1]
#: the report's skip reason for frames a damaged or truncated file lost (FramesLostError)
LOST_REASON = "lost (damaged or truncated file)"


def project_commit() -> str:
    """The checkout's commit (with '+dirty' when it has local changes), or 'unknown'."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_generators(paths: list[Path], threads: int = 1) -> list[Any]:
    from models.generator.runtime import DepthGenerator

    return [DepthGenerator(p, threads=threads) for p in paths]


def load_verifier(path: Path | None) -> Any:
    if path is None or not path.exists():
        return None
    from models.verifier.runtime import Verifier

    return Verifier(path, threads=1)


class RunRecorder:
    """Collects what the report says about a run, frame by frame."""

    def __init__(self, save_dir: Path | None) -> None:
        from models.metrics import MetricsAggregator

        self.save_dir = save_dir
        self.per_frame: list[dict[str, Any]] = []
        self.skipped: Counter[str] = Counter()
        self.bad_frames: list[dict[str, str]] = []
        self.latency = LatencyStats()
        self.stage = {s: LatencyStats() for s in ("read", "locate", "crop", "infer", "score", "total")}
        self.metrics = MetricsAggregator(window=30)
        self.face_regions: Counter[str] = Counter()  # scored frames per face-region kind (mask / fallback)
        self.scores: list[float] = []
        self.enrolled_scores: list[float] = []  # against the enrolment (run --enrolment)
        self.threshold: float | None = None
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)

    def add(self, r: FrameResult) -> None:
        self.latency.add(r.latency_ms)
        for k, v in r.timings_ms.items():
            if k in self.stage:
                self.stage[k].add(v)
        entry: dict[str, Any] = {
            "index": r.index, "timestamp_ns": r.frame.timestamp_ns, "face": r.has_face,
            "latency_ms": round(r.latency_ms, 3),
            "timings_ms": {k: round(v, 3) for k, v in r.timings_ms.items()},
        }
        if r.frame.head_center_raw_mm is not None:  # a dataset's own annotation, before its conversion
            entry["head_center_raw_mm"] = [round(float(v), 2) for v in r.frame.head_center_raw_mm]
        if not r.has_face:
            self.skipped["no face"] += 1
        else:
            main = r.models[0]
            entry["distance_mm"] = round(main.crop.distance_mm, 1)
            entry["method"] = r.head.method if r.head else None
            if main.metrics is not None:
                entry["metrics"] = {k: float(v) for k, v in main.metrics.items()}
                region = getattr(main.metrics, "face_region", None)
                if region is not None:
                    entry["face_region"] = region
                    self.face_regions[region] += 1
            elif r.frame.has_depth:
                self.skipped["too few valid depth pixels"] += 1
            self.metrics.add(main.metrics)
            if main.verification is not None:
                entry["verification"] = main.verification
                self.scores.append(main.verification)
            if main.enrolled is not None:
                entry["enrolled"] = main.enrolled
                self.enrolled_scores.append(main.enrolled)
            if self.save_dir is not None:
                self._save(r)
        self.per_frame.append(entry)

    def add_bad_frame(self, exc: FacedepthError) -> None:
        """A frame that could not be read, or (FramesLostError) a stretch of frames a damaged or
        truncated file lost: counted as that many frames and listed with its span."""
        entry: dict[str, Any] = {"file": exc.path or "", "reason": exc.message}
        if isinstance(exc, FramesLostError):
            self.skipped[LOST_REASON] += exc.frames
            entry.update({"frames": exc.frames, "span_s": None if exc.span_s is None else round(exc.span_s, 3)})
        else:
            self.skipped["unreadable frame"] += 1
        self.bad_frames.append(entry)

    def lost(self) -> dict[str, Any] | None:
        """Frames lost to damaged or truncated files, in all, and the seconds of stream they covered."""
        spans = [e for e in self.bad_frames if "frames" in e]
        if not spans:
            return None
        known = [e["span_s"] for e in spans if e["span_s"] is not None]
        return {"frames": sum(e["frames"] for e in spans), "span_s": round(sum(known), 3) if known else None,
                "stretches": len(spans)}

    def _save(self, r: FrameResult) -> None:
        import cv2

        from sensors.encoding import decode_depth

        main = r.models[0]
        stem = str(self.save_dir / f"{r.index:06d}")
        cv2.imwrite(f"{stem}_color.png", cv2.cvtColor(main.crop.color, cv2.COLOR_RGB2BGR))
        true8 = main.true8
        if true8 is not None:
            cv2.imwrite(f"{stem}_true.png", true8)
        cv2.imwrite(f"{stem}_pred.png", main.pred8)
        pred_mm = decode_depth(main.pred8, main.crop.distance_mm, main.crop.config.half_range_mm)
        cv2.imwrite(f"{stem}_pred_mm.png", np.clip(np.rint(pred_mm), 0, 65535).astype(np.uint16))


def _summary_table(report: dict[str, Any]) -> str:
    rows = [("frames", report["frames"]), ("fps", report["fps"])]
    lat = report["latency_ms"]
    if lat["p50"] is not None:
        rows += [("latency p50/p95/p99 ms", f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f}")]
    rows += [("skipped", report["skipped"]["count"])]
    lost = report["skipped"].get("lost")
    if lost:
        span = f", {lost['span_s']:.2f} s" if lost["span_s"] is not None else ""
        rows += [("lost to file damage", f"{lost['frames']} frames{span} in {lost['stretches']} stretch(es)")]
    for k in SUMMARY_KEYS:
        if k in report.get("metrics", {}):
            rows.append((k, f"{report['metrics'][k]:.4f}"))
    ver = report.get("verification")
    if ver:
        rows.append(("verification accept rate", f"{ver['accept_rate']:.3f}" if ver["accept_rate"] is not None else "-"))
    enr = report.get("enrolment")
    if enr:
        rate = f"{enr['accept_rate']:.3f}" if enr.get("accept_rate") is not None else "-"
        rows.append((f"vs enrolled {enr['name']} ({enr['measures']})", rate))
    width = max(len(str(k)) for k, _ in rows)
    return "\n".join(f"{str(k):<{width}}  {v}" for k, v in rows)


def run_headless(cfg: RunConfig) -> int:
    """Process ``cfg.source`` without a window, print a summary and write the JSON report.

    SIGINT or SIGTERM stops the run between frames: the report is still written (with
    ``"complete": false`` and the signal in ``"stopped"``) and the exit code is 130 or 143.
    """
    from tqdm import tqdm

    from app import stops

    paths = [cfg.model] + ([cfg.second_model] if cfg.second_model else [])
    generators = load_generators(paths)
    verifier = load_verifier(cfg.verifier)
    enrolment = None
    if cfg.enrolment is not None:
        from app.enrol import load_run_enrolment

        enrolment = load_run_enrolment(cfg.enrolment, verifier, cfg.verifier)
    rec = RunRecorder(cfg.save)
    rec.threshold = getattr(verifier, "threshold", None)
    max_frames = cfg.max_frames
    with open_source(cfg.source) as source:
        pipeline = Pipeline(source, generators, verifier=verifier)
        pipeline.enrolment = enrolment
        total = max_frames if max_frames else (len(source) if hasattr(source, "__len__") else None)
        bar = tqdm(total=total, unit="frame", desc="run", file=sys.stderr, disable=not sys.stderr.isatty())
        t_start = time.perf_counter()
        try:
            with stops.deferred():  # a stop request ends the loop between frames
                if source.is_live:
                    _run_threaded(pipeline, rec, bar, max_frames, stops.requested)
                else:
                    _run_sync(pipeline, rec, bar, max_frames, stops.requested)
        finally:
            bar.close()
        elapsed = time.perf_counter() - t_start
        dropped = pipeline.dropped
        described = source.describe()
    n = len(rec.per_frame)
    stopped = stops.signal_name() if stops.requested() else None
    if n == 0 and rec.bad_frames:
        raise FormatError(f"every frame was unreadable ({len(rec.bad_frames)}), e.g. {rec.bad_frames[0]['reason']}",
                          rec.bad_frames[0]["file"] or cfg.source)
    report = build_report(rec, generators, verifier, described, n, elapsed, dropped, stopped=stopped)
    if enrolment is not None:
        report["enrolment"] = enrolment_summary(enrolment, cfg.enrolment, verifier, rec.enrolled_scores)
    if cfg.report:
        from models.common.files import write_json

        write_json(cfg.report, report)
    print(_summary_table(report))
    if stopped:
        stops.announce("run")
        return stops.exit_code()
    return 0


def enrolment_summary(enrolment: Any, path: Path, verifier: Any, scores: list[float]) -> dict[str, Any]:
    """The report's account of the enrolment scored against: whose, what a score measures, and
    the scores' accept rate at the verifier's threshold."""
    from models.verifier.runtime import VerificationAggregator

    agg = VerificationAggregator(verifier.threshold)
    for s in scores:
        agg.add(s)
    return {"file": str(path), "name": enrolment.name, "kind": enrolment.kind, "measures": enrolment.label,
            "crops": len(enrolment.embeddings),
            **agg.summary(), "compares": "each frame's predicted depth crop vs the enrolled crops"}


def _run_sync(pipeline: Pipeline, rec: RunRecorder, bar: Any, max_frames: int | None,
              stop: Callable[[], bool]) -> None:
    while (max_frames is None or len(rec.per_frame) < max_frames) and not stop():
        try:
            result = pipeline.step()
        except EOFError:
            return
        except FormatError as exc:  # a bad frame in a dataset: counted, listed, and the run goes on
            rec.add_bad_frame(exc)
            continue
        rec.add(result)
        bar.update(1)


#: how often the headless loop looks for a stop request while it waits for a result, seconds
#: (a lost source is detected by the pipeline itself, whatever this is)
_POLL_S = 0.1


def _run_threaded(pipeline: Pipeline, rec: RunRecorder, bar: Any, max_frames: int | None,
                  stop: Callable[[], bool]) -> None:
    pipeline.start()
    try:
        while (max_frames is None or len(rec.per_frame) < max_frames) and not stop():
            try:
                result = pipeline.next_result(timeout_s=_POLL_S)
            except TimeoutError:
                if pipeline.error is not None:
                    raise pipeline.error from None
                continue
            except EOFError:
                break
            rec.add(result)
            bar.update(1)
        if pipeline.error is not None:
            raise pipeline.error
    finally:
        pipeline.stop()


def build_report(rec: RunRecorder, generators: list[Any], verifier: Any, source: dict[str, Any],
                 n: int, elapsed_s: float, dropped: int, stopped: str | None = None) -> dict[str, Any]:
    """The run's JSON report; ``stopped`` names the signal (SIGINT, SIGTERM) that cut the run short."""
    g = generators[0]
    report: dict[str, Any] = {
        # false when a signal stopped the run before its source ended or --max-frames was reached
        "complete": stopped is None,
        "stopped": stopped,
        "frames": n,
        "elapsed_s": round(elapsed_s, 4),
        "fps": round(n / elapsed_s, 3) if elapsed_s > 0 else None,
        "dropped": dropped,
        "latency_ms": rec.latency.percentiles(),
        "stages_ms": {k: v.percentiles() for k, v in rec.stage.items()},
        "skipped": {"count": sum(rec.skipped.values()), "reasons": dict(rec.skipped), "bad_frames": rec.bad_frames,
                    "lost": rec.lost()},
        "provenance": {
            "models": [{"file": str(m.path), "sha256": m.sha256, "provider": m.provider,
                        "crop": dict(m.crop_config_dict)} for m in generators],
            "encoding": {"levels": "255 nearest .. 1 farthest, 0 invalid",
                         "half_range_mm": g.crop_config_dict.get("half_range_mm")},
            "ground_truth": "sensor depth of each frame, registered into the colour crop",
            "verifier": None if verifier is None else {"file": str(verifier.path), "sha256": verifier.sha256},
            "source": source,
            "commit": project_commit(),
        },
    }
    if rec.metrics.scored:
        report["metrics"] = {k: float(v) for k, v in rec.metrics.session_mean().items()}
        report["metrics_frames"] = rec.metrics.scored
        if rec.face_regions:  # which face region the face_* metrics used, and how many frames each
            report["face_region"] = {kind: {"frames": n, "rule": FACE_REGION_RULES[kind]}
                                     for kind, n in sorted(rec.face_regions.items())}
    if verifier is not None:
        from models.verifier.runtime import VerificationAggregator

        agg = VerificationAggregator(verifier.threshold)
        for s in rec.scores:
            agg.add(s)
        report["verification"] = agg.summary()
    report["per_frame"] = rec.per_frame
    return report
