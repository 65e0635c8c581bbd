"""``launch.py bench``: measure every stage, the generator and the whole pipeline (``app.bench``)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from app.bench.plan import FULL, MAX_VIDEO_SECONDS, QUICK, VIDEO_SECONDS, VIRTUAL_SOURCE
from app.cli import options
from models.common import shipped


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_report(p, help="write the full report here as JSON", old="--json")
    p.add_argument("--quick", action="store_true",
                   help=f"a short run ({QUICK.frames} frames, fewer repetitions: about half a minute)")
    options.add_model(p, help="the depth generator (default: the shipped models/weights/generator.onnx)")
    p.add_argument("--checkpoint", default=None, metavar="FILE.pt",
                   help="its PyTorch checkpoint for the PyTorch timing (default: the .pt beside the model, if any)")
    options.add_verifier(p, help="the face verifier (default: the shipped models/weights/verifier.onnx when present)")
    p.add_argument("--frames", type=options.positive_int, default=None, metavar="N",
                   help=f"frames to record and replay (default {FULL.frames}, {QUICK.frames} with --quick)")
    p.add_argument("--recording", default=None, metavar="FILE.mcap",
                   help="replay this recording instead of recording the virtual Kinect (its first --frames frames)")
    options.add_source(p, default=VIRTUAL_SOURCE,
                       help="the source recorded when no --recording is given (default: %(default)s)")
    # --soak is range-checked in main (exit 2, tested through launch.main)
    p.add_argument("--soak", type=int, default=0, metavar="N",
                   help="also run the pipeline over N frames (the recording looped) for memory growth, e.g. 10000")
    p.add_argument("--video", action="store_true",
                   help="measure video playback instead: a synthetic 960x540 30 fps clip (and its frames as a "
                        "photo folder) played headless paced and unpaced, and in the window off-screen, against "
                        "the video targets (under a minute)")
    p.add_argument("--video-seconds", type=options.positive_float, default=None, metavar="S",
                   help=f"with --video: the clip's length in seconds, at most {MAX_VIDEO_SECONDS:g} "
                        f"(default {VIDEO_SECONDS:g})")
    options.add_force(p, help="overwrite --report if it exists")


def main(args: argparse.Namespace) -> int:
    from app.bench.report import format_table
    from app.bench.run import BenchConfig, run_bench
    from models.common.errors import ModelError
    from sensors.errors import ConfigError

    options.check_sources(args.source)
    if args.video:
        # the other runs' options would be silently ignored: refused instead
        other = [name for name, given in (("--quick", args.quick), ("--frames", args.frames is not None),
                                          ("--recording", args.recording), ("--soak", args.soak != 0),
                                          ("--checkpoint", args.checkpoint), ("--source", args.source != VIRTUAL_SOURCE))
                 if given]
        if other:
            raise ConfigError(f"--video measures video playback alone: {', '.join(other)} cannot be used with it")
        if args.video_seconds is not None and args.video_seconds > MAX_VIDEO_SECONDS:
            raise ConfigError(f"--video-seconds must be at most {MAX_VIDEO_SECONDS:g}, got {args.video_seconds:g}")
        return _video(args)
    if args.video_seconds is not None:
        raise ConfigError("--video-seconds goes with --video")
    plan = QUICK if args.quick else FULL
    if args.frames is not None:
        if args.frames < plan.pipeline_warmup + 10:
            raise ConfigError(f"--frames must be at least {plan.pipeline_warmup + 10}, got {args.frames}")
        plan = dataclasses.replace(plan, frames=args.frames)
    if args.soak < 0:
        raise ConfigError(f"--soak must not be negative, got {args.soak}")
    model, verifier = _models(args)
    checkpoint = Path(args.checkpoint) if args.checkpoint else model.with_suffix(".pt")
    if args.checkpoint and not checkpoint.is_file():
        raise ModelError("checkpoint file does not exist", checkpoint)
    if args.report:
        from app.cli.outputs import check_output, source_inputs

        check_output(args.report, option="--report", force=args.force,
                     inputs=[model, checkpoint, verifier, args.recording, *source_inputs(args.source)])
    report = run_bench(BenchConfig(
        plan=plan, model=model, quick=bool(args.quick), checkpoint=checkpoint if checkpoint.is_file() else None,
        verifier=verifier if verifier.is_file() else None, recording=Path(args.recording) if args.recording else None,
        frames=args.frames, source=args.source, soak=args.soak))
    if args.report:
        from models.common.files import write_json

        write_json(args.report, report)
    print(format_table(report))
    return 0


def _models(args: argparse.Namespace) -> tuple[Path, Path]:
    """The generator (which must exist) and the verifier (a named one must exist; the shipped one may not)."""
    from models.common.errors import ModelError

    model = Path(args.model) if args.model else shipped.GENERATOR
    if not model.is_file():
        raise ModelError("model file does not exist" if args.model else
                         "no shipped generator yet: pass --model FILE.onnx", model)
    verifier = Path(args.verifier) if args.verifier else shipped.VERIFIER
    if args.verifier and not verifier.is_file():
        raise ModelError("verifier file does not exist", verifier)
    return model, verifier


def _video(args: argparse.Namespace) -> int:
    """``bench --video``: the video playback measurement alone (``app.bench.video``)."""
    from app.bench.report import format_video_table
    from app.bench.run import run_video_bench

    model, verifier = _models(args)
    if args.report:
        from app.cli.outputs import check_output

        check_output(args.report, option="--report", force=args.force, inputs=[model, verifier])
    seconds = VIDEO_SECONDS if args.video_seconds is None else float(args.video_seconds)
    report = run_video_bench(model, verifier if verifier.is_file() else None, seconds)
    if args.report:
        from models.common.files import write_json

        write_json(args.report, report)
    print(format_video_table(report))
    return 0
