"""Enrolment: capture a person's reference for live face verification (``launch.py enrol``).

Reads frames from the source, finds the head (``sensors.locate.locator.HeadLocator``), cuts the crop the
verifier was trained on (``sensors.crop.crop_face``) and keeps the depth crop of N frames with a
face: the sensor's TRUE depth when the source has depth ("true-depth": live scores against it
measure identity), else the generator's PREDICTED depth from the colour crop
("predicted-depth": live scores against it only measure the generator's self-consistency).
The enrolment file (``models.verifier.runtime.Enrolment``) holds the crops' embeddings and the
stamp of the verifier, so it is refused with any other verifier.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.run_config import DEFAULT_SOURCE
from models.common import shipped



@dataclass(frozen=True)
class EnrolmentRule:
    """The one rule for what goes into an enrolment, shared by ``launch.py enrol`` and the GUI's
    Enrol: ``frames`` depth crops, each with at least ``min_valid_fraction`` of its pixels
    valid (a crop mostly outside the sensor's range would enrol noise)."""

    frames: int = 30
    min_valid_fraction: float = 0.15

    def accepts(self, depth8: Any) -> bool:
        """Whether one (S, S) uint8 depth crop (0 = invalid) may be enrolled."""
        import numpy as np

        crop = np.asarray(depth8)
        return crop.size > 0 and float(np.mean(crop > 0)) >= self.min_valid_fraction


#: the enrolment rule in force (CLI and GUI)
ENROLMENT_RULE = EnrolmentRule()


def _crop_config(verifier: Any, generator: Any | None) -> Any:
    from sensors.crop import CropConfig
    from models.common.errors import ModelError

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
    from models.common.errors import ModelError
    from sensors.errors import SensorError
    from models.refiner.runtime import default_locator

    locator = default_locator(smoothing=source.is_live)
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
            if not ENROLMENT_RULE.accepts(depth8):
                continue
            crops.append(depth8)
            bar.update(1)
    finally:
        bar.close()
    return np.stack(crops), str(kind)


@dataclass(frozen=True)
class EnrolConfig:
    """One enrolment: ``frames`` crops of every ``every``-th frame with a face of ``source``,
    within ``timeout_s``; the generator ``model`` predicts depth when the source has none."""

    name: str
    source: str = DEFAULT_SOURCE
    frames: int = ENROLMENT_RULE.frames
    every: int = 3
    timeout_s: float = 60.0
    verifier: Path = shipped.VERIFIER
    model: Path = shipped.GENERATOR
    progress: bool = True


def enrol(cfg: EnrolConfig) -> tuple[Any, Any]:
    """The enrolment of ``cfg.name`` (not yet saved) and the verifier it was made with."""
    from models.verifier.runtime import Enrolment, Verifier
    from sensors.errors import ConfigError
    from sensors.source import open_source

    if cfg.frames < 1 or cfg.every < 1 or cfg.timeout_s <= 0:
        raise ConfigError("--frames and --every must be at least 1 and --timeout-s positive")
    if not cfg.name.strip():
        raise ConfigError("--name must not be empty")
    verifier = Verifier(cfg.verifier, threads=1)
    with open_source(cfg.source) as source:
        crops, kind = capture_crops(source, verifier, cfg.frames, cfg.every, cfg.timeout_s, cfg.model,
                                    progress=cfg.progress)
        enrolment = Enrolment.create(cfg.name.strip(), kind, verifier, crops, source=str(source.uri))
    return enrolment, verifier


def load_run_enrolment(path: Path, verifier: Any, verifier_path: Path) -> Any:
    """The enrolment ``run --enrolment FILE`` names, checked against the verifier in use: a
    one-line error naming the file when it is missing, malformed or made with another verifier,
    or naming the verifier when there is none to score against."""
    from models.common.errors import ModelError
    from models.verifier.runtime import Enrolment

    if verifier is None:
        raise ModelError(f"--enrolment {path} needs a face verifier, and this file does not exist "
                         "(pass --verifier FILE.onnx)", verifier_path)
    return Enrolment.load(path, verifier)
