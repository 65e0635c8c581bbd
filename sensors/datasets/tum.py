"""TUM RGB-D style folders: ``tum:PATH`` for import, :class:`TumWriter` for export.

A folder holds ``rgb/`` and ``depth/`` images and the lists ``rgb.txt`` and ``depth.txt``
(``timestamp filename`` per line, ``#`` comments; timestamps in seconds). Depth images are
16-bit PNGs; a value v means v / scale metres, with TUM's scale of 5000 per metre unless the
folder says otherwise.

Import (``tum:PATH``):

- Colour and depth images are paired by nearest timestamp, each image used at most once, the
  closest pairs first, within ``max_dt`` seconds (option, default 0.02 as in TUM's
  ``associate.py``); unpaired images are counted in ``describe()``. Without ``depth.txt`` the
  frames are colour only.
- Cameras: from ``calibration.json`` when present (written by :class:`TumWriter`: both cameras,
  the depth-to-colour transform and the depth scale); else TUM's recommended default
  (fx = fy = 525, cx = 319.5, cy = 239.5 at 640x480, scaled to the image size) for colour and
  depth alike, since TUM's depth images are registered to the colour camera; ``calibration=FILE``
  (an OpenCV camera matrix file) overrides that default for both.
- ``annotations.json`` (also written by :class:`TumWriter`) restores head centre, rotation and
  subject per colour image, with the frame's source, the head-centre definition and a
  dataset's own head point (``sensors.locate.stored`` reads files written without them).
- Options: ``max_dt=SECONDS``, ``calibration=FILE``, ``pace=on``, ``loop=on``.

Export (``launch.py convert --format tum``): :class:`TumWriter` writes colour as PNG, depth as
16-bit PNG at 5000 per metre (1 mm = 5 units, exact for depths up to 13107 mm; deeper readings
are written as 0 and counted), and ``calibration.json`` with the scale written down.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import numpy as np

from sensors.devices.calibration import load_calibration
from sensors.errors import ConfigError, FormatError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics, HEAD_CENTRE_DEFINITION
from sensors.locate.stored import StoredCentres
from sensors.indexed import IndexedSource, read_color_image, read_depth_png, write_png
from sensors.source import Options, SourceURI

#: TUM's depth scale: a 16-bit value v is v / 5000 metres
TUM_DEPTH_SCALE_PER_M = 5000.0
#: TUM's recommended default camera (the ROS default), at 640x480
TUM_DEFAULT_CAMERA = CameraIntrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
CALIBRATION_FILE = "calibration.json"
ANNOTATIONS_FILE = "annotations.json"


class TumEntry(NamedTuple):
    """One line of ``rgb.txt``/``depth.txt``."""

    timestamp_s: float
    timestamp_ns: int  # exact, from the decimal text
    file: str


def read_tum_list(path: str | os.PathLike[str]) -> list[TumEntry]:
    """Parse an ``rgb.txt``/``depth.txt``: one :class:`TumEntry` per non-comment line."""
    path = os.fspath(path)
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise FormatError("list file is missing", path) from None
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        if len(parts) < 2:
            raise FormatError(f"line {i} is not 'timestamp filename': {s!r}", path)
        try:
            exact = Decimal(parts[0])
            t_ns = int(exact * 1_000_000_000)
        except (InvalidOperation, ValueError, OverflowError):  # not a number, NaN, infinity
            raise FormatError(f"line {i} has no numeric timestamp: {s!r}", path) from None
        if not math.isfinite(float(exact)):
            raise FormatError(f"line {i} has an impossible timestamp: {s!r}", path)
        out.append(TumEntry(float(exact), t_ns, parts[1]))
    return out


def associate(color: list[TumEntry], depth: list[TumEntry], max_dt_s: float) -> list[tuple[int, int]]:
    """Pairs (colour index, depth index) by nearest timestamp, one-to-one, closest first,
    at most ``max_dt_s`` apart; returned in colour order."""
    if not color or not depth:
        return []
    ct = np.array([e[0] for e in color])
    dt = np.array([e[0] for e in depth])
    order_d = np.argsort(dt)
    sd = dt[order_d]
    candidates = []
    for i, t in enumerate(ct):  # a few nearest depth stamps per colour stamp
        j = int(np.searchsorted(sd, t))
        for k in range(max(j - 2, 0), min(j + 2, len(sd))):
            diff = abs(sd[k] - t)
            if diff <= max_dt_s:
                candidates.append((diff, i, int(order_d[k])))
    candidates.sort()
    used_c, used_d, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_c and j not in used_d:
            used_c.add(i)
            used_d.add(j)
            pairs.append((i, j))
    return sorted(pairs)


@dataclass(frozen=True)
class _Item:
    t_color_ns: int
    color_file: str
    depth_file: str | None


class TumSource(IndexedSource):
    """Frames of a TUM RGB-D style folder (see the module docstring)."""

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        opts = Options(uri)
        self.max_dt_s = float(opts.float("max_dt", 0.02))
        if not self.max_dt_s > 0:
            raise ConfigError(f"max_dt in {uri} must be a positive number of seconds")
        self.calibration_path = opts.str("calibration", None)
        self._read_common_options(opts)
        opts.finish()
        self.root = os.fspath(uri.target or "")
        self._items: list[_Item] = []
        self.depth_scale_per_m = TUM_DEPTH_SCALE_PER_M
        self._color_cam: CameraIntrinsics | None = None
        self._depth_cam: CameraIntrinsics | None = None
        self._extr = Extrinsics.identity()
        self._camera_note = ""
        self._annotations: dict[str, dict] = {}
        self.unpaired = {"color": 0, "depth": 0}
        self._centres = StoredCentres()

    def _open(self) -> None:
        root = self.root
        if not os.path.isdir(root):
            raise FormatError("not a folder (expected a TUM RGB-D folder with rgb.txt)", root)
        color = read_tum_list(os.path.join(root, "rgb.txt"))
        depth_list = os.path.join(root, "depth.txt")
        depth = read_tum_list(depth_list) if os.path.exists(depth_list) else []
        if not color:
            raise FormatError("rgb.txt lists no images", os.path.join(root, "rgb.txt"))
        calib = os.path.join(root, CALIBRATION_FILE)
        if os.path.isfile(calib):
            self._read_calibration(calib)
        elif self.calibration_path:
            self._camera_note = f"calibration file {self.calibration_path} (colour and registered depth)"
        else:
            self._camera_note = ("TUM default fx=fy=525, cx=319.5, cy=239.5 at 640x480 for colour and "
                                 "registered depth (assumed)")
        ann = os.path.join(root, ANNOTATIONS_FILE)
        if os.path.isfile(ann):
            try:
                with open(ann, encoding="utf-8") as f:
                    self._annotations = {a["color_file"]: a for a in json.load(f)}
            except (ValueError, KeyError, TypeError) as exc:
                raise FormatError(f"annotations are malformed ({exc})", ann) from None
        if depth:
            pairs = associate(color, depth, self.max_dt_s)
            self._items = [_Item(color[i].timestamp_ns, color[i].file, depth[j].file) for i, j in pairs]
            self.unpaired = {"color": len(color) - len(pairs), "depth": len(depth) - len(pairs)}
            if not self._items:
                raise FormatError(f"no colour image has a depth image within {self.max_dt_s:g} s "
                                  "(raise max_dt=)", root)
        else:
            self._items = [_Item(e.timestamp_ns, e.file, None) for e in color]
        self._items.sort(key=lambda it: it.t_color_ns)
        self._set_timestamps([it.t_color_ns for it in self._items])

    def _read_calibration(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            self.depth_scale_per_m = float(d.get("depth_scale_per_m", TUM_DEPTH_SCALE_PER_M))
            self._color_cam = CameraIntrinsics.from_dict(d["color_camera"])
            self._depth_cam = CameraIntrinsics.from_dict(d["depth_camera"]) if d.get("depth_camera") else None
            if d.get("depth_to_color"):
                self._extr = Extrinsics.from_dict(d["depth_to_color"])
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"calibration is malformed ({exc})", path) from None
        if not self.depth_scale_per_m > 0:
            raise FormatError("depth_scale_per_m must be positive", path)
        self._camera_note = f"{CALIBRATION_FILE} (depth scale {self.depth_scale_per_m:g} per metre)"

    def _default_camera(self, width: int, height: int) -> CameraIntrinsics:
        if self.calibration_path:
            return load_calibration(self.calibration_path).for_size(width, height)
        if (width, height) == (640, 480):
            return TUM_DEFAULT_CAMERA
        return TUM_DEFAULT_CAMERA.scaled(width, height)

    def _load(self, position: int) -> Frame:
        it = self._items[position]
        color = read_color_image(os.path.join(self.root, it.color_file))
        h, w = color.shape[:2]
        color_cam = self._color_cam or self._default_camera(w, h)
        if color_cam.width != w or color_cam.height != h:
            raise FormatError(f"colour image is {w}x{h} but the calibration says {color_cam.width}x{color_cam.height}",
                              os.path.join(self.root, it.color_file))
        depth_mm = depth_cam = None
        if it.depth_file is not None:
            raw = read_depth_png(os.path.join(self.root, it.depth_file))
            if self.depth_scale_per_m == 1000.0:
                depth_mm = raw
            else:
                mm = np.rint(raw.astype(np.float64) * (1000.0 / self.depth_scale_per_m))
                depth_mm = np.clip(mm, 0, 65535).astype(np.uint16)
            dh, dw = depth_mm.shape
            depth_cam = self._depth_cam or (color_cam if (dw, dh) == (w, h) else self._default_camera(dw, dh))
        a = self._annotations.get(it.color_file, {})
        try:
            centre, raw = self._centres(
                a.get("head_center_definition"), str(a.get("source", "")), a.get("head_center_mm"),
                a.get("head_rotation"), a.get("head_center_raw_mm"), depth_mm, depth_cam)
        except ValueError as exc:
            raise FormatError(f"{it.color_file}: {exc}", os.path.join(self.root, ANNOTATIONS_FILE)) from None
        return Frame(index=position, timestamp_ns=self._timestamps_ns[position], color=color,
                     color_camera=color_cam, depth_mm=depth_mm, depth_camera=depth_cam,
                     depth_to_color=self._extr if depth_mm is not None else Extrinsics.identity(),
                     head_center_mm=centre, head_rotation=a.get("head_rotation"),
                     subject_id=a.get("subject_id"), source=f"tum:{it.color_file}", head_center_raw_mm=raw)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"dataset": "TUM RGB-D folder", "cameras": self._camera_note,
                  "depth_scale_per_m": self.depth_scale_per_m, "max_dt_s": self.max_dt_s,
                  "unpaired": dict(self.unpaired), "head_centre": self._centres.describe()})
        return d


class TumWriter:
    """Writes frames as a TUM RGB-D folder that :class:`TumSource` reads back (see the module
    docstring). Use as a context manager, or call :meth:`close` to write the lists."""

    def __init__(self, out_dir: str | os.PathLike[str], depth_scale_per_m: float = TUM_DEPTH_SCALE_PER_M,
                 overwrite: bool = False) -> None:
        self.root = os.fspath(out_dir)
        if not overwrite and os.path.exists(os.path.join(self.root, "rgb.txt")):
            raise ConfigError(f"{self.root} already holds a TUM folder (rgb.txt); choose an empty folder")
        os.makedirs(os.path.join(self.root, "rgb"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "depth"), exist_ok=True)
        self.scale = float(depth_scale_per_m)
        self._rgb: list[str] = []
        self._depth: list[str] = []
        self._annotations: list[dict] = []
        self._calib: dict | None = None
        self._last_t = -1.0
        self.frames_written = 0
        self.depth_pixels_out_of_range = 0
        self._closed = False

    def write(self, frame: Frame) -> None:
        t = round(frame.timestamp_ns / 1e9, 6)
        if t <= self._last_t:  # names must be unique and increasing
            t = round(self._last_t + 1e-6, 6)
        self._last_t = t
        name = f"{t:.6f}.png"
        write_png(os.path.join(self.root, "rgb", name), frame.color, rgb=True)
        self._rgb.append(f"{t:.6f} rgb/{name}")
        if frame.depth_mm is not None:
            units = frame.depth_mm.astype(np.float64) * (self.scale / 1000.0)
            over = units > 65535
            self.depth_pixels_out_of_range += int(over.sum())
            units[over] = 0
            write_png(os.path.join(self.root, "depth", name), np.rint(units).astype(np.uint16))
            self._depth.append(f"{t:.6f} depth/{name}")
        if self._calib is None:
            self._calib = {
                "writer": "facedepth",
                "depth_scale_per_m": self.scale,
                "depth_scale_note": f"16-bit depth value / {self.scale:g} = metres",
                "color_camera": frame.color_camera.to_dict(),
                "depth_camera": None if frame.depth_camera is None else frame.depth_camera.to_dict(),
                "depth_to_color": frame.depth_to_color.to_dict() if frame.depth_camera is not None else None,
            }
        if frame.head_center_mm is not None or frame.subject_id is not None or frame.head_rotation is not None:
            self._annotations.append({
                "color_file": f"rgb/{name}",
                "source": frame.source,
                "head_center_mm": None if frame.head_center_mm is None else frame.head_center_mm.tolist(),
                "head_center_definition": HEAD_CENTRE_DEFINITION,
                "head_center_raw_mm": None if frame.head_center_raw_mm is None else frame.head_center_raw_mm.tolist(),
                "head_rotation": None if frame.head_rotation is None else frame.head_rotation.tolist(),
                "subject_id": frame.subject_id,
            })
        self.frames_written += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        head = ["# timestamp filename", "# written by facedepth"]
        with open(os.path.join(self.root, "rgb.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(["# color images"] + head + self._rgb) + "\n")
        if self._depth:
            with open(os.path.join(self.root, "depth.txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(["# depth maps", f"# depth scale: {self.scale:g} per metre"] + head + self._depth)
                        + "\n")
        with open(os.path.join(self.root, CALIBRATION_FILE), "w", encoding="utf-8") as f:
            json.dump(self._calib or {"writer": "facedepth", "depth_scale_per_m": self.scale}, f, indent=1)
        if self._annotations:
            with open(os.path.join(self.root, ANNOTATIONS_FILE), "w", encoding="utf-8") as f:
                json.dump(self._annotations, f)

    def __enter__(self) -> "TumWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
