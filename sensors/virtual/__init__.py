"""The virtual Kinect v2: procedural people in rooms, seen through a simulated Kinect v2.

``VirtualKinect`` serves the ``virtual:`` source scheme (the project's default live source and
the source of its training data). See ``source.py`` for the options and the README's "Virtual
Kinect" section for the model behind it.
"""
from sensors.virtual.people import HeadModel, Identity, build_head, sample_identity
from sensors.virtual.cameras import COLOR_CAMERA, DEPTH_CAMERA, DEPTH_TO_COLOR, FPS
from sensors.virtual.scene import FrameState, SequencePlan
from sensors.virtual.source import VirtualKinect, VirtualOptions

__all__ = [
    "COLOR_CAMERA", "DEPTH_CAMERA", "DEPTH_TO_COLOR", "FPS", "FrameState", "HeadModel", "Identity",
    "SequencePlan", "VirtualKinect", "VirtualOptions", "build_head", "sample_identity",
]
