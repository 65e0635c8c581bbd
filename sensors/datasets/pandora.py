"""The Pandora dataset (Kinect One v2, 22 subjects, 110 sequences): ``pandora:PATH``.

``PATH`` is the dataset root (subject folders holding sequences such as ``base_1_ID01``,
``free_2_ID01``) or one sequence folder. A sequence holds ``RGB/%06d_RGB.png``,
``DEPTH/%06d_DEPTH.png`` (16-bit, mm) and ``data.json``, a list of per-frame records.

Options:

- ``split=train|val|test`` keeps the subject-independent split used by the lab's verification
  work: validation subjects 9, 18, 21, 22; test subjects 10, 14, 16, 20; training the rest
  (:data:`PANDORA_SPLITS`). ``subjects=A-B`` keeps those subject numbers.
- ``pace=on`` plays at 30 Hz, ``loop=on`` starts over at the end.
- ``centre=refine|offset``: how the head joint becomes the project's head centre (below).

The subject of a sequence is the number after ``ID`` in its name (``base_1_ID07`` -> 7), else
its parent folder's number.

Records. Each record's ``frame_num`` names its frame; ``orientation.euler`` holds ``yaw``,
``pitch``, ``roll`` in degrees; the Kinect body joints (a mapping from joint name to joint, or a
list of joints carrying a ``name``/``type``, or a plain list in Kinect v2 JointType order where
3 is the head) give each joint's 3D position (key ``3D``/``3d``/``camera``/``position``, Kinect
camera space: metres, y up) and its colour-image pixel (key ``color``/``colour``/``2D``/``rgb``).
The head joint becomes ``Frame.head_center_mm`` in depth-camera coordinates of the images as
stored: (s x, -y, z) * 1000 with s = +1 for the mirrored images the Kinect SDK writes; when the
records carry colour-image joints, s is chosen per sequence as the sign under which the 3D head
joints project onto the annotated colour pixels.

Head centre. The Kinect skeleton's head joint is not the project's head centre (the skull's
centre, :mod:`sensors.geometry`), and how far apart the two are is not published. So by default
(``centre=refine``) the reader measures the centre from the frame's depth with the locator's
head model (``sensors.locate.centre.refine_centre``) at the joint, keeping the joint where that fails;
``centre=offset`` takes the joint as it is. The joint stays in ``Frame.head_center_raw_mm``;
``describe()["head_centre"]`` says what was done, how often the measurement failed and how far
the centres moved.

Orientation. Yaw, pitch and roll become ``Frame.head_rotation`` through the project's one
convention (``sensors.geometry.rotation_from_euler_deg``), reading Pandora's angles as the
project's. This is an assumption, UNVERIFIED: neither the dataset's documentation nor public
code that reads it states Pandora's axes, order or signs. The raw angles are kept (see
:meth:`PandoraSource.orientation_deg`) and ``describe()["orientation"]`` repeats the caveat.

Records that cannot be parsed are never skipped silently: each is listed by sequence and record
number in ``problems`` and counted in ``describe()``; their frames play without annotations. A
data.json that is not JSON, or that holds no usable record at all, is a FormatError naming it
(a sequence without data.json plays without annotations, listed in ``problems``).

Cameras. Pandora ships no calibration: both cameras use Kinect v2 typical intrinsics
(:data:`KINECT_V2_DEPTH`, :data:`KINECT_V2_COLOR`, scaled when an image has another size), and
the depth-to-colour transform is R = I with t = (52 s, 0, 0) mm (the Kinect v2 cameras sit about
52 mm apart), refined per sequence as the median offset that puts the 3D head joints on their
colour pixels where the records allow (at least 5 records with both). ``describe()`` states
which, with the median reprojection error of the head joints in colour pixels.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensors.errors import ConfigError, FormatError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics, rotation_from_euler_deg
from sensors.locate.centre import CentreConversion
from sensors.indexed import DATASET_FRAME_PERIOD_NS, IndexedSource, natural_key, read_color_image, read_depth_png
from sensors.source import Options, SourceURI

#: Kinect v2 typical intrinsics (each device differs slightly; Pandora ships none)
KINECT_V2_DEPTH = CameraIntrinsics(365.5, 365.5, 254.9, 205.4, 512, 424)
KINECT_V2_COLOR = CameraIntrinsics(1081.4, 1081.4, 959.5, 539.5, 1920, 1080)
#: distance between the Kinect v2 depth and colour cameras, mm
KINECT_V2_BASELINE_MM = 52.0

#: subject-independent split (validation and test subjects; training is everyone else)
PANDORA_SPLITS: dict[str, frozenset[int]] = {"val": frozenset({9, 18, 21, 22}), "test": frozenset({10, 14, 16, 20})}

_FRAME_RE = re.compile(r"^(\d+)_RGB\.png$")
_ID_RE = re.compile(r"ID(\d+)", re.IGNORECASE)
_KEYS_3D = ("3D", "3d", "camera", "camera_space", "position", "world", "xyz")
_KEYS_2D = ("color", "colour", "2D", "2d", "rgb", "color_space", "uv")
_HEAD_JOINT_TYPE = 3  # Kinect v2 JointType_Head
#: said in describe() about the orientation
ORIENTATION_NOTE = ("assumed, unverified: Pandora's yaw, pitch, roll read as the project's (sensors.geometry: "
                    "R = Ry(yaw) Rx(-pitch) Rz(roll)); no documentation settles Pandora's convention")


def pandora_centre_conversion(method: str = "refine") -> CentreConversion:
    """The Kinect head joint -> the project's head centre (see the module docstring)."""
    return CentreConversion(method, np.zeros(3),
                            "none: the Kinect head joint's offset from the skull centre is not published")


def pandora_split(subject: int) -> str:
    """``train``, ``val`` or ``test`` for a Pandora subject number."""
    for name, members in PANDORA_SPLITS.items():
        if subject in members:
            return name
    return "train"


def _vector(value: Any, n: int) -> np.ndarray | None:
    """[x, y, ...] or {"x":..,"y":..,...} -> float array of n, else None."""
    if isinstance(value, dict):
        keys = ("x", "y", "z")[:n]
        if all(k in value for k in keys):
            value = [value[k] for k in keys]
        elif all(k.upper() in value for k in keys):
            value = [value[k.upper()] for k in keys]
        else:
            return None
    if isinstance(value, (list, tuple)) and len(value) >= n:
        try:
            a = np.array([float(v) for v in value[:n]])
        except (TypeError, ValueError):
            return None
        return a if np.all(np.isfinite(a)) else None
    return None


def _joint_field(joint: Any, keys: tuple[str, ...], n: int) -> np.ndarray | None:
    if not isinstance(joint, dict):
        return None
    for k in keys:
        if k in joint:
            return _vector(joint[k], n)
    return None


def _head_joint(joints: Any) -> Any:
    if isinstance(joints, dict):
        for name, joint in joints.items():
            if str(name).lower() in ("head", "jointtype_head"):
                return joint
        return None
    if isinstance(joints, list):
        for joint in joints:
            if isinstance(joint, dict):
                tag = joint.get("name", joint.get("type", joint.get("joint")))
                if tag is not None and (str(tag).lower() in ("head", "jointtype_head") or tag == _HEAD_JOINT_TYPE):
                    return joint
        if len(joints) == 25 and not any(isinstance(j, dict) and ("name" in j or "type" in j) for j in joints):
            return joints[_HEAD_JOINT_TYPE]
    return None


@dataclass
class PandoraRecord:
    """What one data.json record says about its frame (fields None when absent or unparseable)."""

    frame_num: int
    euler_deg: tuple[float, float, float] | None = None  # yaw, pitch, roll
    head_kinect_m: np.ndarray | None = None  # Kinect camera space as written
    head_color_px: np.ndarray | None = None


def parse_records(data: Any, where: str) -> tuple[dict[int, PandoraRecord], list[str]]:
    """Parse a data.json document: records by frame number, and one line per problem."""
    problems: list[str] = []
    if isinstance(data, dict) and isinstance(data.get("frames"), list):
        data = data["frames"]
    if not isinstance(data, list):
        return {}, [f"{where}: data.json is not a list of frame records ({type(data).__name__})"]
    records: dict[int, PandoraRecord] = {}
    for i, rec in enumerate(data):
        tag = f"{where}: record {i}"
        if not isinstance(rec, dict) or "frame_num" not in rec:
            problems.append(f"{tag}: no frame_num")
            continue
        try:
            num = int(rec["frame_num"])
        except (TypeError, ValueError):
            problems.append(f"{tag}: frame_num {rec['frame_num']!r} is not a number")
            continue
        tag = f"{where}: record {i} (frame {num})"
        out = PandoraRecord(num)
        what = []
        euler = rec.get("orientation", {}).get("euler") if isinstance(rec.get("orientation"), dict) else None
        if isinstance(euler, dict) and all(k in euler for k in ("yaw", "pitch", "roll")):
            try:
                out.euler_deg = (float(euler["yaw"]), float(euler["pitch"]), float(euler["roll"]))
            except (TypeError, ValueError):
                what.append("orientation.euler is not numeric")
        else:
            what.append("no orientation.euler yaw/pitch/roll")
        joints = rec.get("joints", rec.get("skeleton", rec.get("body")))
        head = _head_joint(joints)
        if head is None:
            what.append("no head joint")
        else:
            out.head_kinect_m = _joint_field(head, _KEYS_3D, 3)
            out.head_color_px = _joint_field(head, _KEYS_2D, 2)
            if out.head_kinect_m is None:
                what.append("head joint has no 3D position")
        if what:
            problems.append(f"{tag}: {'; '.join(what)}")
        records[num] = out
    return records, problems


@dataclass
class _Sequence:
    folder: str
    name: str
    subject: int | None
    records: dict[int, PandoraRecord]
    sign_x: float
    depth_to_color: Extrinsics
    extrinsic_note: str
    head_reprojection_px: float | None


def _to_mm(head_m: np.ndarray, sign_x: float) -> np.ndarray:
    scale = 1000.0 if np.max(np.abs(head_m)) < 20.0 else 1.0  # metres, as Kinect writes them
    return np.array([sign_x * head_m[0], -head_m[1], head_m[2]]) * scale


def _fit_sequence_geometry(records: dict[int, PandoraRecord]) -> tuple[float, Extrinsics, str, float | None]:
    """Choose the x sign and the colour offset from records with 3D and colour head joints."""
    pairs = [(r.head_kinect_m, r.head_color_px) for r in records.values()
             if r.head_kinect_m is not None and r.head_color_px is not None]
    default = Extrinsics(np.eye(3), [KINECT_V2_BASELINE_MM, 0.0, 0.0])
    if len(pairs) < 5:
        return 1.0, default, "assumed: R = I, t = (52, 0, 0) mm (Kinect v2 typical; too few colour joints to check)", None
    c = KINECT_V2_COLOR
    best = None
    for sign in (1.0, -1.0):
        p = np.array([_to_mm(h, sign) for h, _ in pairs])
        uv = np.array([q for _, q in pairs])
        ok = p[:, 2] > 1.0
        if ok.sum() < 5:
            continue
        p, uv = p[ok], uv[ok]
        # the translation that puts each joint on its colour pixel at the joint's own depth
        off = c.unproject(uv[:, 0], uv[:, 1], p[:, 2]) - p
        tx, ty = float(np.median(off[:, 0])), float(np.median(off[:, 1]))
        ext = Extrinsics(np.eye(3), [tx, ty, 0.0])
        err = float(np.median(np.linalg.norm(c.project(ext.apply(p)) - uv, axis=1)))
        if best is None or err < 0.5 * best[2]:  # the other sign only when clearly better
            best = (sign, ext, err)
    if best is None:
        return 1.0, default, "assumed: R = I, t = (52, 0, 0) mm (no usable colour joints)", None
    sign, ext, err = best
    note = (f"fitted: R = I, t = ({ext.translation_mm[0]:.1f}, {ext.translation_mm[1]:.1f}, 0) mm from "
            f"{len(pairs)} head joints ({'mirrored' if sign > 0 else 'unmirrored'} images)")
    return sign, ext, note, err


def _find_sequences(root: str) -> list[str]:
    if os.path.isfile(os.path.join(root, "data.json")) or os.path.isdir(os.path.join(root, "RGB")):
        return [root]
    found = []
    base_depth = root.rstrip(os.sep).count(os.sep)
    for dirpath, dirnames, filenames in os.walk(root):
        if "data.json" in filenames or "RGB" in dirnames:
            found.append(dirpath)
            dirnames[:] = []
        elif dirpath.count(os.sep) - base_depth >= 3:
            dirnames[:] = []
    return sorted(found, key=lambda p: natural_key(os.path.relpath(p, root)))


def _subject_of(folder: str) -> int | None:
    name = os.path.basename(os.path.normpath(folder))
    m = _ID_RE.search(name)
    if m:
        return int(m.group(1))
    parent = os.path.basename(os.path.dirname(os.path.normpath(folder)))
    return int(parent) if parent.isdigit() else None


class PandoraSource(IndexedSource):
    """Frames of the Pandora dataset with the head joint and head orientation as annotations."""

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        opts = Options(uri)
        self.split = opts.str("split", None)
        if self.split is not None:
            self.split = self.split.lower()
            if self.split not in ("train", "val", "test"):
                raise ConfigError(f"split={self.split!r} in {uri} must be train, val or test")
        self.subjects = opts.int_range("subjects", None)
        self.centre = pandora_centre_conversion(opts.str("centre", "refine"))
        self._read_common_options(opts)
        opts.finish()
        self.root = os.fspath(uri.target or "")
        self._seqs: list[_Sequence] = []
        self._items: list[tuple[int, int, str]] = []  # (sequence slot, frame number, file stem)
        self.problems: list[str] = []

    def _open(self) -> None:
        if not os.path.isdir(self.root):
            raise FormatError("not a folder (expected the Pandora root or one sequence)", self.root)
        folders = _find_sequences(self.root)
        if not folders:
            raise FormatError("no Pandora sequences here (folders with RGB/, DEPTH/ and data.json)", self.root)
        for folder in folders:
            subject = _subject_of(folder)
            if self.split and (subject is None or pandora_split(subject) != self.split):
                continue
            if self.subjects and (subject is None or not self.subjects[0] <= subject <= self.subjects[1]):
                continue
            name = os.path.relpath(folder, os.path.dirname(os.path.normpath(self.root))) \
                if folder != self.root else os.path.basename(os.path.normpath(folder))
            records: dict[int, PandoraRecord] = {}
            path = os.path.join(folder, "data.json")
            if os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8") as f:
                        doc = json.load(f)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise FormatError(f"not valid JSON ({exc})", path) from None
                records, problems = parse_records(doc, name)
                if not any(r.euler_deg is not None or r.head_kinect_m is not None for r in records.values()):
                    first = problems[0].split(": ", 1)[-1] if problems else "no records"
                    raise FormatError(f"no usable frame record (orientation.euler or a head joint with a 3D "
                                      f"position); first problem: {first}", path)
                self.problems.extend(problems)
            else:
                self.problems.append(f"{name}: no data.json; frames play without annotations")
            sign, ext, note, err = _fit_sequence_geometry(records)
            slot = len(self._seqs)
            self._seqs.append(_Sequence(folder, name, subject, records, sign, ext, note, err))
            rgb_dir, depth_dir = os.path.join(folder, "RGB"), os.path.join(folder, "DEPTH")
            names = sorted(os.listdir(rgb_dir)) if os.path.isdir(rgb_dir) else []
            depth_names = set(os.listdir(depth_dir)) if os.path.isdir(depth_dir) else set()
            frames = sorted((int(m.group(1)), m.group(1)) for m in map(_FRAME_RE.match, names) if m)
            for num, digits in frames:
                if f"{digits}_DEPTH.png" not in depth_names:
                    self.problems.append(f"{name}: frame {digits} has no DEPTH/{digits}_DEPTH.png, left out")
                    continue
                if records and num not in records:
                    self.problems.append(f"{name}: frame {digits} has no data.json record; plays without annotations")
                self._items.append((slot, num, digits))
        if not self._items:
            what = f"in split {self.split} " if self.split else ""
            raise FormatError(f"no Pandora frames {what}(RGB/NNNNNN_RGB.png with DEPTH/NNNNNN_DEPTH.png)", self.root)
        stamps, base, prev = [], 0, None
        for _, num, _ in self._items:  # sequences restart their numbers: keep stamps increasing
            t = num * DATASET_FRAME_PERIOD_NS
            if prev is not None and t + base <= prev:
                base = prev + DATASET_FRAME_PERIOD_NS - t
            prev = t + base
            stamps.append(prev)
        self._set_timestamps(stamps)

    def _record(self, position: int) -> PandoraRecord | None:
        slot, num, _ = self._items[position]
        return self._seqs[slot].records.get(num)

    def orientation_deg(self, position: int) -> dict[str, float] | None:
        """The recorded yaw, pitch, roll (degrees) of the frame at ``position``, if any."""
        rec = self._record(position)
        if rec is None or rec.euler_deg is None:
            return None
        return dict(zip(("yaw", "pitch", "roll"), rec.euler_deg))

    def _load(self, position: int) -> Frame:
        slot, num, digits = self._items[position]
        seq = self._seqs[slot]
        color = read_color_image(os.path.join(seq.folder, "RGB", f"{digits}_RGB.png"))
        depth = read_depth_png(os.path.join(seq.folder, "DEPTH", f"{digits}_DEPTH.png"))
        ch, cw = color.shape[:2]
        dh, dw = depth.shape
        color_cam = KINECT_V2_COLOR if (cw, ch) == (1920, 1080) else KINECT_V2_COLOR.scaled(cw, ch)
        depth_cam = KINECT_V2_DEPTH if (dw, dh) == (512, 424) else KINECT_V2_DEPTH.scaled(dw, dh)
        rec = seq.records.get(num)
        center = rotation = raw = None
        if rec is not None:
            if rec.euler_deg is not None:
                rotation = rotation_from_euler_deg(*rec.euler_deg)
            if rec.head_kinect_m is not None and rec.head_kinect_m[2] > 0:
                raw = _to_mm(rec.head_kinect_m, seq.sign_x)
                center = self.centre(raw, rotation, depth, depth_cam)
        return Frame(index=position, timestamp_ns=self._timestamps_ns[position], color=color,
                     color_camera=color_cam, depth_mm=depth, depth_camera=depth_cam,
                     depth_to_color=seq.depth_to_color, head_center_mm=center, head_rotation=rotation,
                     subject_id=seq.subject, source=f"pandora:{seq.name}/{digits}", head_center_raw_mm=raw)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({
            "dataset": "Pandora",
            "split": self.split or "all",
            "split_definition": "val subjects 9, 18, 21, 22; test 10, 14, 16, 20; train the rest",
            "sequences": len(self._seqs),
            "subjects": sorted({s.subject for s in self._seqs if s.subject is not None}),
            "intrinsics": "assumed Kinect v2 typical (depth fx=fy=365.5, cx=254.9, cy=205.4 at 512x424; "
                          "colour fx=fy=1081.4, cx=959.5, cy=539.5 at 1920x1080), scaled to the image size",
            "depth_to_color": {s.name: s.extrinsic_note for s in self._seqs[:20]},
            "head_joint_reprojection_px": {s.name: (None if s.head_reprojection_px is None
                                                    else round(s.head_reprojection_px, 2))
                                           for s in self._seqs[:20]},
            "problems": {"count": len(self.problems), "items": self.problems[:50]},
            "head_centre": self.centre.describe(),
            "orientation": ORIENTATION_NOTE,
        })
        return d
