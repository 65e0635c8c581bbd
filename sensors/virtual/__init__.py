"""The virtual Kinect v2: procedural people in rooms, seen through a simulated Kinect v2.

``VirtualKinect`` serves the ``virtual:`` source scheme (the project's default live source and
the source of its training data). See ``source.py`` for the options and the README's "Virtual
Kinect" section for the model behind it.
"""
from .head import HeadModel, Identity, build_head, sample_identity
from .kinect import COLOR_CAMERA, DEPTH_CAMERA, DEPTH_TO_COLOR, FPS
from .scene import FrameState, SequencePlan
from .source import VirtualKinect, VirtualOptions

__all__ = [
    "COLOR_CAMERA", "DEPTH_CAMERA", "DEPTH_TO_COLOR", "FPS", "FrameState", "HeadModel", "Identity",
    "SequencePlan", "VirtualKinect", "VirtualOptions", "build_head", "sample_identity",
]
