"""What the window remembers between runs (QSettings): layout, last source, models, output folder,
the depth panels' range and colour map.

The default store is the user's (organisation and application "facedepth"); tests and
``--screenshot`` runs pass their own INI file so they never touch it.
"""
from __future__ import annotations

from pathlib import Path

from PyQt5 import QtCore

ORGANISATION = "facedepth"
APPLICATION = "facedepth"
MAX_RECENT_SOURCES = 8


class AppSettings:
    """Typed access to the few values the window keeps."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            self._q = QtCore.QSettings(ORGANISATION, APPLICATION)
        else:
            self._q = QtCore.QSettings(str(path), QtCore.QSettings.IniFormat)

    @property
    def file_name(self) -> str:
        return self._q.fileName()

    # -- window layout ----------------------------------------------------------------------
    def geometry(self) -> QtCore.QByteArray | None:
        v = self._q.value("window/geometry")
        return v if isinstance(v, QtCore.QByteArray) else None

    def state(self) -> QtCore.QByteArray | None:
        v = self._q.value("window/state")
        return v if isinstance(v, QtCore.QByteArray) else None

    def save_layout(self, geometry: QtCore.QByteArray, state: QtCore.QByteArray) -> None:
        self._q.setValue("window/geometry", geometry)
        self._q.setValue("window/state", state)

    # -- sources ----------------------------------------------------------------------------
    def last_source(self) -> str | None:
        v = self._q.value("source/last")
        return str(v) if v else None

    def recent_sources(self) -> list[str]:
        v = self._q.value("source/recent")
        if isinstance(v, str):
            return [v] if v else []
        return [str(s) for s in (v or []) if s]

    def remember_source(self, uri: str) -> None:
        recent = [uri] + [s for s in self.recent_sources() if s != uri]
        self._q.setValue("source/last", uri)
        self._q.setValue("source/recent", recent[:MAX_RECENT_SOURCES])

    # -- the face model the virtual Kinect's scan people are made from ----------------------
    def face_model(self) -> str | None:
        v = self._q.value("source/face_model")
        return str(v) if v else None

    def set_face_model(self, folder: str | Path) -> None:
        self._q.setValue("source/face_model", str(folder))

    # -- output folder (snapshots, recordings, CSV) -----------------------------------------
    def output_dir(self) -> Path:
        """Where recordings, snapshots, enrolments and exports go: the project's data folder
        (``sensors.paths.data_dir()``) unless the user chose another."""
        from sensors.paths import data_dir

        v = self._q.value("output/dir")
        return Path(str(v)) if v else data_dir()

    def set_output_dir(self, path: str | Path) -> None:
        self._q.setValue("output/dir", str(path))

    # -- the last enrolment (reloaded at start when it belongs to the verifier in use) -------
    def last_enrolment(self) -> Path | None:
        v = self._q.value("verification/enrolment")
        return Path(str(v)) if v else None

    def set_last_enrolment(self, path: str | Path | None) -> None:
        self._q.setValue("verification/enrolment", "" if path is None else str(path))

    # -- how depth is drawn (display only) ---------------------------------------------------
    def display(self) -> tuple[float, str]:
        """The depth panels' shown half-range (mm) and colour map; the defaults when unset or
        unreadable (a hand-edited file must not stop the window from opening)."""
        from app.gui.display import (DEFAULT_COLORMAP, DEFAULT_SHOWN_HALF_RANGE_MM, DEPTH_COLORMAPS,
                                     SHOWN_RANGE_LIMITS_MM)

        try:
            half = float(self._q.value("display/half_range_mm", DEFAULT_SHOWN_HALF_RANGE_MM))
        except (TypeError, ValueError):
            half = DEFAULT_SHOWN_HALF_RANGE_MM
        lo, hi = SHOWN_RANGE_LIMITS_MM
        if not lo <= half <= hi:
            half = DEFAULT_SHOWN_HALF_RANGE_MM
        cmap = str(self._q.value("display/colormap", DEFAULT_COLORMAP))
        return half, cmap if cmap in DEPTH_COLORMAPS else DEFAULT_COLORMAP

    def set_display(self, half_range_mm: float, colormap: str) -> None:
        self._q.setValue("display/half_range_mm", float(half_range_mm))
        self._q.setValue("display/colormap", str(colormap))

    # -- generic small values ---------------------------------------------------------------
    def value(self, key: str, default: object = None) -> object:
        return self._q.value(key, default)

    def set_value(self, key: str, value: object) -> None:
        self._q.setValue(key, value)

    def sync(self) -> None:
        self._q.sync()
