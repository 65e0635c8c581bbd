"""The Biwi Kinect Head Pose database (Kinect v1, 640x480): ``biwi:PATH``.

``PATH`` is the ``hpdb`` folder (sequences ``01`` .. ``24``) or one sequence folder. In each
sequence: ``frame_XXXXX_rgb.png``, ``frame_XXXXX_depth.bin``, ``frame_XXXXX_pose.txt`` and the
camera files ``depth.cal`` and ``rgb.cal``. Frame numbers need not start at 0 and may have
gaps; frames play in number order, sequence after sequence.

Options: ``subjects=A-B`` (or ``subject=K``) keeps the sequences of those people (see
:data:`BIWI_SUBJECT_OF_SEQUENCE`), ``sequences=A-B`` keeps those sequence numbers, ``pace=on``
plays at 30 Hz, ``loop=on`` starts over at the end, ``centre=offset|refine`` (below).

Head centre. Biwi's ``pose.txt`` centre is the centre of the database's face template, not the
project's head centre (the skull's centre, :mod:`sensors.geometry`): on the real subject 01,
frame 3 it lies at colour-camera z 867 mm where the project's locator puts the skull centre at
933 mm, 66 mm further along the view of a near-frontal face. The reader converts it
(``centre=offset``, the default) by :data:`BIWI_TEMPLATE_TO_SKULL_MM` in the head's own axes,
so the conversion follows the head as it turns; ``centre=refine`` then measures the centre from
the frame's depth with the locator's head model (``sensors.locate.centre.refine_centre``), keeping the
offset's centre where that fails. The annotation as written stays in
``Frame.head_center_raw_mm``; ``describe()["head_centre"]`` says what was done and how far the
centres moved.

File formats (the readers are public functions):

- ``depth.bin`` (:func:`read_depth_bin`): little-endian int32 width, int32 height, then runs
  until width*height pixels are filled: int32 count of empty pixels (0), int32 count of filled
  pixels, then that many int16 depths in mm.
- ``.cal`` (:func:`read_cal`): blocks separated by blank lines: the 3x3 intrinsic matrix, four
  distortion coefficients, the 3x3 rotation, the translation (mm), width and height. In
  ``rgb.cal`` R and T take a depth-camera point p to colour-camera coordinates as R p + T
  (:func:`depth_to_color_from_cal`).
- ``pose.txt`` (:func:`read_pose`): the 3x3 head rotation (three lines, as written, rows as
  lines), a blank line, the head centre (x y z, mm, depth-camera coordinates). The rotation is
  passed on unchanged as ``Frame.head_rotation`` (head axes to the depth camera, the identity
  for a face looking into the camera, as ``sensors.geometry`` defines them).

Frame timestamps are the frame number times 1/30 s (the database has no clock).
"""
from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensors.errors import ConfigError, FormatError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics
from sensors.locate.centre import CentreConversion
from sensors.indexed import DATASET_FRAME_PERIOD_NS, IndexedSource, read_color_image
from sensors.source import Options, SourceURI

#: Biwi sequence number -> person. The database has 24 sequences of 20 people: sequences 15,
#: 18, 21 and 22 show the people of sequences 3, 5, 2 and 7 again. A person is numbered by
#: their first sequence, so subject ids are 1..24 without 15, 18, 21 and 22.
BIWI_SUBJECT_OF_SEQUENCE: dict[int, int] = {s: s for s in range(1, 25)} | {15: 3, 18: 5, 21: 2, 22: 7}

#: the skull centre relative to the face template's centre, in head axes (mm): measured on the
#: real subject 01, frame 3 (annotation at colour z 867 mm, the locator's skull centre at 933)
BIWI_TEMPLATE_TO_SKULL_MM = np.array([0.0, 0.0, 66.0])

_FRAME_RE = re.compile(r"^frame_(\d+)_rgb\.png$")
_MAX_SIDE = 16384


def biwi_subject(sequence: int) -> int:
    """The person shown in Biwi sequence ``sequence`` (see :data:`BIWI_SUBJECT_OF_SEQUENCE`)."""
    return BIWI_SUBJECT_OF_SEQUENCE.get(int(sequence), int(sequence))


# -- readers ------------------------------------------------------------------------------
def read_depth_bin(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a Biwi run-length ``depth.bin`` to an HxW uint16 array in mm (0 = no reading).

    Raises FormatError naming the file when the header is implausible, a run goes past the end
    of the image, or the file ends early.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FormatError("depth file is missing", path) from None
    if len(data) < 8:
        raise FormatError(f"file too short for the width/height header ({len(data)} bytes)", path)
    width, height = struct.unpack_from("<ii", data, 0)
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise FormatError(f"implausible image size {width}x{height} in the header", path)
    n = width * height
    out = np.zeros(n, dtype=np.int16)
    pos, filled, size = 8, 0, len(data)
    run = struct.Struct("<ii")
    while filled < n:
        if pos + 8 > size:
            raise FormatError(f"file ends after {filled} of {n} pixels (truncated)", path)
        empty, full = run.unpack_from(data, pos)
        pos += 8
        if empty < 0 or full < 0:
            raise FormatError(f"negative run length at byte {pos - 8}", path)
        if filled + empty + full > n:
            raise FormatError(f"run length past the end of the image at byte {pos - 8}", path)
        filled += empty
        if full:
            end = pos + 2 * full
            if end > size:
                raise FormatError(f"file ends inside a run of {full} depths (truncated)", path)
            out[filled:filled + full] = np.frombuffer(data, dtype="<i2", count=full, offset=pos)
            pos = end
            filled += full
    depth = out.reshape(height, width)
    np.maximum(depth, 0, out=depth)  # negative depths are no reading
    return depth.astype(np.uint16)


@dataclass(frozen=True, eq=False)
class BiwiCalibration:
    """One ``.cal`` file: the camera, and R, T as written."""

    camera: CameraIntrinsics
    rotation: np.ndarray
    translation_mm: np.ndarray


def _numbers(line: str, path: str) -> list[float]:
    try:
        return [float(x) for x in line.split()]
    except ValueError:
        raise FormatError(f"not a line of numbers: {line.strip()!r}", path) from None


def read_cal(path: str | os.PathLike[str]) -> BiwiCalibration:
    """Parse a Biwi ``depth.cal`` / ``rgb.cal`` (see the module docstring for the layout)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
    except FileNotFoundError:
        raise FormatError("calibration file is missing", path) from None
    rows = [_numbers(ln, path) for ln in lines]
    want = [3, 3, 3, 4, 3, 3, 3, 3, 2]
    got = [len(r) for r in rows]
    if got[:9] != want:
        raise FormatError(
            f"expected lines of {want} numbers (K, distortion, R, T, size), got {got}", path)
    if not all(np.isfinite(v) for r in rows[:9] for v in r):
        raise FormatError("calibration holds non-finite numbers", path)
    k = np.array(rows[0:3], dtype=np.float64)
    rot = np.array(rows[4:7], dtype=np.float64)
    t = np.array(rows[7], dtype=np.float64)
    w, h = rows[8]
    if k[0, 0] <= 0 or k[1, 1] <= 0 or w <= 0 or h <= 0 or w != int(w) or h != int(h):
        raise FormatError("non-positive focal length or image size", path)
    if abs(np.linalg.det(rot) - 1.0) > 0.05:
        raise FormatError(f"R is not a rotation (determinant {np.linalg.det(rot):.3f})", path)
    cam = CameraIntrinsics(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]),
                           int(w), int(h), tuple(float(x) for x in rows[3]))
    return BiwiCalibration(cam, rot, t)


def depth_to_color_from_cal(depth_cal: BiwiCalibration, rgb_cal: BiwiCalibration) -> Extrinsics:
    """The depth-to-colour transform: each file's R, T maps a common frame to its camera; in
    the database depth.cal's is the identity, so this is rgb.cal's R p + T."""
    to_depth = Extrinsics(depth_cal.rotation, depth_cal.translation_mm)
    to_color = Extrinsics(rgb_cal.rotation, rgb_cal.translation_mm)
    inv = to_depth.inverse()
    return Extrinsics(to_color.rotation @ inv.rotation,
                      to_color.rotation @ inv.translation_mm + to_color.translation_mm)


@dataclass(frozen=True, eq=False)
class BiwiPose:
    """One ``pose.txt``: head rotation (as written) and head centre in depth-camera mm."""

    rotation: np.ndarray
    center_mm: np.ndarray


def read_pose(path: str | os.PathLike[str]) -> BiwiPose:
    """Parse a Biwi ``frame_XXXXX_pose.txt``."""
    path = os.fspath(path)
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            rows = [_numbers(ln, path) for ln in f.read().splitlines() if ln.strip()]
    except FileNotFoundError:
        raise FormatError("pose file is missing", path) from None
    if [len(r) for r in rows] != [3, 3, 3, 3]:
        raise FormatError(f"expected 3 rotation lines and 1 centre line of 3 numbers, got {[len(r) for r in rows]}",
                          path)
    rot = np.array(rows[:3], dtype=np.float64)
    center = np.array(rows[3], dtype=np.float64)
    if not (np.all(np.isfinite(rot)) and np.all(np.isfinite(center))):
        raise FormatError("pose holds non-finite numbers", path)
    return BiwiPose(rot, center)


def biwi_centre_conversion(method: str = "offset") -> CentreConversion:
    """Biwi's face-template centre -> the project's head centre (see the module docstring)."""
    return CentreConversion(method, BIWI_TEMPLATE_TO_SKULL_MM,
                            "Biwi's template centre to the skull centre, measured on the real subject 01, frame 3")


# -- the source ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sequence:
    folder: str
    number: int | None
    subject: int | str
    depth_cam: CameraIntrinsics
    color_cam: CameraIntrinsics
    depth_to_color: Extrinsics


def _is_sequence(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "depth.cal")) or any(
        _FRAME_RE.match(n) for n in os.listdir(folder))


class BiwiSource(IndexedSource):
    """Frames of the Biwi Kinect Head Pose database, with head pose annotations."""

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        opts = Options(uri)
        subjects = opts.int_range("subjects", None)
        subject = opts.int_range("subject", None)
        if subjects and subject:
            raise ConfigError(f"give subjects= or subject=, not both, in {uri}")
        self.subjects = subjects or subject
        self.sequences = opts.int_range("sequences", None)
        self.centre = biwi_centre_conversion(opts.str("centre", "offset"))
        self._read_common_options(opts)
        opts.finish()
        self.root = os.fspath(uri.target or "")
        self._seqs: list[_Sequence] = []
        self._items: list[tuple[int, int, str]] = []  # (sequence slot, frame number, its digits)
        self.problems: list[str] = []

    def _open(self) -> None:
        root = self.root
        if not os.path.isdir(root):
            raise FormatError("not a folder (expected the hpdb folder or one sequence)", root)
        if _is_sequence(root):
            folders = [root]
        else:
            folders = sorted((os.path.join(root, n) for n in os.listdir(root)
                              if n.isdigit() and os.path.isdir(os.path.join(root, n))),
                             key=lambda p: int(os.path.basename(p)))
            if not folders:
                raise FormatError("no Biwi sequences here (expected folders 01..24 with frame_*_rgb.png)", root)
        for folder in folders:
            name = os.path.basename(os.path.normpath(folder))
            number = int(name) if name.isdigit() else None
            subject: int | str = biwi_subject(number) if number is not None else name
            if self.sequences and (number is None or not self.sequences[0] <= number <= self.sequences[1]):
                continue
            if self.subjects and (not isinstance(subject, int) or not self.subjects[0] <= subject <= self.subjects[1]):
                continue
            dcal = read_cal(os.path.join(folder, "depth.cal"))
            ccal = read_cal(os.path.join(folder, "rgb.cal"))
            slot = len(self._seqs)
            self._seqs.append(_Sequence(folder, number, subject, dcal.camera, ccal.camera,
                                        depth_to_color_from_cal(dcal, ccal)))
            names = set(os.listdir(folder))
            found = sorted((int(m.group(1)), m.group(1)) for m in map(_FRAME_RE.match, names) if m)
            for k, digits in found:
                if f"frame_{digits}_depth.bin" not in names:
                    self.problems.append(f"{name}/frame_{digits}: no depth.bin, frame left out")
                    continue
                self._items.append((slot, k, digits))
        if not self._items:
            what = "with these filters " if (self.subjects or self.sequences) else ""
            raise FormatError(f"no Biwi frames {what}(frame_XXXXX_rgb.png with depth.bin)", root)
        self._set_timestamps([k * DATASET_FRAME_PERIOD_NS for _, k, _ in self._items])

    def _set_timestamps(self, timestamps_ns: list[int]) -> None:
        # sequences restart their frame numbers: keep stamps increasing across sequences
        out, base, prev = [], 0, None
        for t in timestamps_ns:
            if prev is not None and t + base <= prev:
                base = prev + DATASET_FRAME_PERIOD_NS - t
            prev = t + base
            out.append(prev)
        super()._set_timestamps(out)

    def _load(self, position: int) -> Frame:
        slot, _, digits = self._items[position]
        seq = self._seqs[slot]
        stem = os.path.join(seq.folder, f"frame_{digits}")
        color = read_color_image(stem + "_rgb.png")
        if color.shape[:2] != (seq.color_cam.height, seq.color_cam.width):
            raise FormatError(f"colour image is {color.shape[1]}x{color.shape[0]} but rgb.cal says "
                              f"{seq.color_cam.width}x{seq.color_cam.height}", stem + "_rgb.png")
        depth = read_depth_bin(stem + "_depth.bin")
        if depth.shape != (seq.depth_cam.height, seq.depth_cam.width):
            raise FormatError(f"depth is {depth.shape[1]}x{depth.shape[0]} but depth.cal says "
                              f"{seq.depth_cam.width}x{seq.depth_cam.height}", stem + "_depth.bin")
        center = rotation = raw = None
        if os.path.exists(stem + "_pose.txt"):
            pose = read_pose(stem + "_pose.txt")
            raw, rotation = pose.center_mm, pose.rotation
            center = self.centre(raw, rotation, depth, seq.depth_cam)
        name = os.path.basename(os.path.normpath(seq.folder))
        return Frame(index=position, timestamp_ns=self._timestamps_ns[position], color=color,
                     color_camera=seq.color_cam, depth_mm=depth, depth_camera=seq.depth_cam,
                     depth_to_color=seq.depth_to_color, head_center_mm=center, head_rotation=rotation,
                     subject_id=seq.subject, source=f"biwi:{name}/frame_{digits}", head_center_raw_mm=raw)

    def frame_name(self, position: int) -> str:
        """``SEQUENCE/frame_XXXXX`` of the frame at ``position``."""
        slot, _, digits = self._items[position]
        return f"{os.path.basename(os.path.normpath(self._seqs[slot].folder))}/frame_{digits}"

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({
            "dataset": "Biwi Kinect Head Pose",
            "sequences": [os.path.basename(os.path.normpath(s.folder)) for s in self._seqs],
            "subjects": sorted({s.subject for s in self._seqs}, key=str),
            "subject_table": "sequences 15, 18, 21, 22 are the people of sequences 3, 5, 2, 7",
            "problems": {"count": len(self.problems), "items": self.problems[:50]},
            "head_centre": self.centre.describe(),
        })
        if self._seqs:
            d["depth_camera"] = self._seqs[0].depth_cam.to_dict()
            d["color_camera"] = self._seqs[0].color_cam.to_dict()
            d["depth_to_color"] = self._seqs[0].depth_to_color.to_dict()
        return d
