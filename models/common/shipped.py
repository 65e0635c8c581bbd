"""The shipped weights: the one place that names their folder and files.

Every command and the GUI take their defaults from here, so moving or renaming a shipped file
is a change in one line. The files are committed under ``models/weights`` and come from the
project's own training commands (see ``models/README.md``).
"""
from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: the default depth generator (the cGAN) and its AE baseline
GENERATOR = WEIGHTS_DIR / "generator.onnx"
GENERATOR_AE = WEIGHTS_DIR / "generator_ae.onnx"
#: the face verifier and the head-centre refiner
VERIFIER = WEIGHTS_DIR / "verifier.onnx"
REFINER = WEIGHTS_DIR / "head_refiner.onnx"
