"""The shipped weights: the one place that names their folder and files.

Every command and the GUI take their defaults from here, so moving or renaming a shipped file
is a change in one line. The files are committed under ``models/weights`` and come from the
project's own training commands (see ``models/README.md``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: the default depth generator (the cGAN) and its AE baseline
GENERATOR = WEIGHTS_DIR / "generator.onnx"
GENERATOR_AE = WEIGHTS_DIR / "generator_ae.onnx"
#: the face verifier and the head-centre refiner
VERIFIER = WEIGHTS_DIR / "verifier.onnx"
REFINER = WEIGHTS_DIR / "head_refiner.onnx"


@dataclass(frozen=True)
class RealHeadScore:
    """A generator's face-shape L1 on one real person's scanned head rendered by the virtual
    Kinect, next to MediaPipe Face Mesh's on the same crops and pixels (models/README.md, "The
    real scanned head", which has the commands)."""

    face_shape_l1_mm: float
    mediapipe_face_shape_l1_mm: float
    file: str  # the shipped file's name, to point a user from one model to a better one


#: measured scores of the shipped generators, by the sha256 of the file measured: a retrained
#: file has no entry until it is measured again (a test keeps the keys on the shipped files)
REAL_HEAD_SCORES: dict[str, RealHeadScore] = {
    "1b02b824406703c3fec1b25bca6efb3f91f7306526482fc9514eb9dedae7d541": RealHeadScore(6.27, 4.30, GENERATOR.name),
    "a549238862e552158502d28a84e65a890c2c3da8320ef540d21cde8d6b0734ad": RealHeadScore(3.09, 4.30, GENERATOR_AE.name),
}
