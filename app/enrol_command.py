"""``launch.py enrol``: capture a person's reference for live face verification.

    python launch.py enrol --source kinect: --name alice --frames 30 --out alice.json
    python launch.py enrol --source webcam:0 --name alice --frames 30 --out alice.json

Reads frames from the source, finds the head (``sensors.locate.locator.HeadLocator``), cuts the crop the
verifier was trained on (``sensors.crop.crop_face``) and keeps the depth crop of N frames with a
face: the sensor's TRUE depth when the source has depth ("true-depth": live scores against it
measure identity), else the generator's PREDICTED depth from the colour crop
("predicted-depth": live scores against it only measure the generator's self-consistency).
The enrolment file (``models.verifier.runtime.Enrolment``) holds the crops' embeddings and the
stamp of the verifier, so it is refused with any other verifier.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

#: crops with fewer valid depth pixels than this share of the crop are not enrolled
MIN_VALID_FRACTION = 0.15


def add_arguments(p: argparse.ArgumentParser) -> None:
    from app.run_command import DEFAULT_MODEL, DEFAULT_SOURCE, DEFAULT_VERIFIER

    p.add_argument("--source", default=DEFAULT_SOURCE, metavar="URI", help="where frames come from (default %(default)s)")
    p.add_argument("--name", required=True, help="the person's name, stored in the enrolment")
    p.add_argument("--frames", type=int, default=30, metavar="N", help="crops to enrol (default %(default)s)")
    p.add_argument("--every", type=int, default=3, metavar="K",
                   help="use every K-th frame with a face, for more varied poses (default %(default)s)")
    p.add_argument("--out", required=True, metavar="FILE.json", help="where to write the enrolment")
    p.add_argument("--verifier", default=None, metavar="FILE.onnx", help=f"face verifier (default: the shipped {DEFAULT_VERIFIER.name})")
    p.add_argument("--model", default=None, metavar="FILE.onnx",
                   help=f"depth generator, used when the source has no depth (default: the shipped {DEFAULT_MODEL.name})")
    p.add_argument("--timeout-s", type=float, default=60.0, help="give up after this many seconds (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _crop_config(verifier: Any, generator: Any | None) -> Any:
    from sensors.crop import CropConfig
    from sensors.errors import ModelError

    if verifier.crop_config_dict:
        cfg = CropConfig.from_dict(dict(verifier.crop_config_dict))
    elif generator is not None:
        cfg = CropConfig.from_dict(dict(generator.crop_config_dict))
    else:
        cfg = CropConfig()
    if cfg.size_px != verifier.size_px:
        raise ModelError(f"verifier takes {verifier.size_px}px crops but its crop config says {cfg.size_px}px", verifier.path)
    if generator is not None:
        g = CropConfig.from_dict(dict(generator.crop_config_dict))
        if not g.same_pixels(cfg):
            raise ModelError(f"the generator's crop ({g.to_dict()}) differs from the verifier's ({cfg.to_dict()})", generator.path)
    return cfg


def capture_crops(source: Any, verifier: Any, frames: int, every: int, timeout_s: float,
                  generator_path: Path | None, progress: bool = True) -> tuple[Any, str]:
    """(N, S, S) uint8 depth crops of N frames with a face, and their kind (true/predicted depth)."""
    from tqdm import tqdm

    import numpy as np

    from sensors.crop import crop_face
    from sensors.errors import ModelError, SensorError
    from models.refiner.runtime import default_locator

    locator = default_locator(source.is_live)
    generator = None
    cfg = None
    kind = None
    crops: list[Any] = []
    faces = 0
    deadline = time.monotonic() + timeout_s
    bar = tqdm(total=frames, desc="enrol", unit="crop", disable=not progress, leave=False)
    try:
        while len(crops) < frames:
            if time.monotonic() > deadline:
                raise SensorError(f"only {len(crops)} of {frames} crops with a face in {timeout_s:g} s", str(source.uri))
            try:
                frame = source.read(timeout_s=1.0)
            except TimeoutError:
                continue
            except EOFError:
                raise SensorError(f"the source ended after {len(crops)} of {frames} crops with a face; "
                                  "lower --frames or --every", str(source.uri)) from None
            if kind is None:
                kind = "true-depth" if frame.has_depth else "predicted-depth"
                if kind == "predicted-depth":
                    if generator_path is None or not generator_path.exists():
                        raise ModelError("the source has no depth, so enrolment needs a generator (--model)", generator_path)
                    from models.generator.runtime import DepthGenerator

                    generator = DepthGenerator(generator_path, threads=1)
                cfg = _crop_config(verifier, generator)
            head = locator.locate(frame)
            if head is None:
                continue
            faces += 1
            if (faces - 1) % every:
                continue
            crop = crop_face(frame, head.center_color_mm, cfg)
            if kind == "true-depth":
                depth8 = crop.depth8()
                if depth8 is None:
                    raise SensorError("a frame of a depth source came without depth", str(source.uri))
            else:
                depth8 = generator.predict(crop.color)
            if np.mean(depth8 > 0) < MIN_VALID_FRACTION:
                continue
            crops.append(depth8)
            bar.update(1)
    finally:
        bar.close()
    return np.stack(crops), str(kind)


def main(args: argparse.Namespace) -> int:
    from app.run_command import DEFAULT_MODEL, DEFAULT_VERIFIER
    from models.verifier.runtime import Enrolment, Verifier
    from sensors.errors import ConfigError
    from sensors.source import open_source

    if args.frames < 1 or args.every < 1 or args.timeout_s <= 0:
        raise ConfigError("--frames and --every must be at least 1 and --timeout-s positive")
    if not args.name.strip():
        raise ConfigError("--name must not be empty")
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise ConfigError(f"output folder {str(out.parent)!r} does not exist")
    verifier = Verifier(Path(args.verifier) if args.verifier else DEFAULT_VERIFIER, threads=1)
    model = Path(args.model) if args.model else DEFAULT_MODEL
    with open_source(args.source) as source:
        crops, kind = capture_crops(source, verifier, args.frames, args.every, args.timeout_s, model,
                                    progress=not args.quiet)
        enrolment = Enrolment.create(args.name.strip(), kind, verifier, crops, source=str(source.uri))
    enrolment.save(out)
    print(f"enrolled {enrolment.name!r} from {len(crops)} {kind} crops of {enrolment.source} -> {out} "
          f"(scores against it measure {enrolment.label}; verifier {verifier.name} {verifier.sha256[:12]})")
    return 0
