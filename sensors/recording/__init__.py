"""Recordings: MCAP files with ROS 2 messages, written crash-safely and replayed frame-accurately.

- :mod:`sensors.recording.schema`: the file layout (topics, message definitions, conversion of
  frame parts to messages);
- :mod:`sensors.recording.writer`: :class:`Recorder`, the background writer;
- :mod:`sensors.recording.index`: :func:`scan_mcap`, the index of a file, complete or cut short;
- :mod:`sensors.recording.replay`: :class:`ReplaySource`, the ``replay:`` scheme;
- :mod:`sensors.recording.capture`: :func:`record_source`, a source to a file (``launch.py record``);
- where new recordings go: :mod:`sensors.paths`.
"""
from sensors.recording.index import McapScan, scan_mcap
from sensors.recording.replay import ReplayExtras, ReplaySource
from sensors.recording.schema import (
    FORMAT_VERSION, TOPIC_COLOR, TOPIC_COLOR_INFO, TOPIC_DEPTH, TOPIC_DEPTH_CLEAN, TOPIC_DEPTH_INFO, TOPIC_FRAME,
    TOPIC_HEAD, TOPIC_METRICS, TOPIC_PREDICTION, TOPIC_TF, rotation_to_quaternion,
)
from sensors.recording.writer import Recorder, RecordingStats

__all__ = [
    "FORMAT_VERSION", "McapScan", "Recorder", "RecordingStats", "ReplayExtras", "ReplaySource", "TOPIC_COLOR",
    "TOPIC_COLOR_INFO", "TOPIC_DEPTH", "TOPIC_DEPTH_CLEAN", "TOPIC_DEPTH_INFO", "TOPIC_FRAME", "TOPIC_HEAD",
    "TOPIC_METRICS", "TOPIC_PREDICTION", "TOPIC_TF", "rotation_to_quaternion", "scan_mcap",
]
