"""Sensors: sources of colour and depth frames, camera geometry, recordings and the face crop.

This package imports nothing else from the project (checked by the import rules in
pyproject.toml), so every other layer can build on it.
"""
from sensors.errors import (
    ConfigError,
    FacedepthError,
    FormatError,
    SensorError,
    SourceLostError,
)
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics
from sensors.source import Options, Pacer, SeekableSource, Source, SourceURI, open_source, parse_uri

__all__ = [
    "CameraIntrinsics", "ConfigError", "Extrinsics", "FacedepthError", "FormatError", "Frame",
    "Options", "Pacer", "SeekableSource", "SensorError", "Source", "SourceLostError",
    "SourceURI", "open_source", "parse_uri",
]
