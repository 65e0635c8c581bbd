"""``launch.py evaluate-locator --photos``: whether colour-only head localisation frames real faces
the way the models' training crops are framed.

The crops the models learn from are cut around annotated head centres of the virtual Kinect; a
real photo has no annotation, so its crop is cut around the centre the locator finds from the
colour image alone (``sensors.locate.locator``, face box -> distance -> centre). Both are judged
by the same yardstick: the face detector's box (:class:`~sensors.locate.colour.FaceDetector`) run
on the finished crop, as a share of the crop's side. On the virtual crops (frames with
|yaw| <= :data:`MAX_YAW_DEG`, every ``--every``-th of ``--source``) the box's mean centre and
width are the reference; a photo's crop is well framed when its box centre lies within
:data:`MAX_OFFSET` of the crop's side from the reference centre and its width within
:data:`MAX_SIZE_ERROR` of the reference width::

    python launch.py evaluate-locator --photos A.jpg B.png --max-frames 1500 --report photos.json
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: a photo's face box centre may lie this far (a share of the crop's side) from the virtual crops' mean
MAX_OFFSET = 0.06
#: ... and its width differ by this share from theirs
MAX_SIZE_ERROR = 0.25
#: the virtual crops of the reference face the camera about as photos do
MAX_YAW_DEG = 30.0


@dataclass(frozen=True)
class FacePlacement:
    """Where the face detector's box sits in a crop: its centre (x right, y down) and width, each a
    share of the crop's side."""

    x: float
    y: float
    size: float


def face_placement(detector: Any, crop_color: np.ndarray) -> FacePlacement | None:
    """The largest face the detector finds in an RGB crop, placed as shares of its side; None for none."""
    from sensors.locate.colour import detection_gray

    side = crop_color.shape[1]
    boxes = detector.detect(detection_gray(crop_color, 1.0), max(12, side // 5))
    if not boxes:
        return None
    x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
    return FacePlacement((x + w / 2) / side, (y + h / 2) / side, w / side)


def reference_placement(detector: Any, source: str, every: int, max_frames: int | None, crop_config: Any,
                        progress: bool = False) -> tuple[FacePlacement, int, int]:
    """The mean face placement on crops cut at the annotated centres of ``source``'s frames with
    |yaw| <= :data:`MAX_YAW_DEG`; with the number of crops with a face and of crops looked at."""
    from models.evaluation.locator import LocatorEvalConfig, _frames
    from sensors.crop import crop_face
    from sensors.errors import ConfigError
    from sensors.geometry import euler_deg_from_rotation

    found: list[FacePlacement] = []
    looked = 0
    cfg = LocatorEvalConfig(source=source, every=every, max_frames=max_frames, progress=progress)
    with _frames(cfg, live=False, desc="evaluate-locator --photos") as (_, frames):
        for scored, frame in frames:
            center = frame.head_center_color_mm()
            if not scored or center is None or frame.head_rotation is None:
                continue
            if abs(euler_deg_from_rotation(frame.head_rotation)[0]) > MAX_YAW_DEG:
                continue
            looked += 1
            placed = face_placement(detector, crop_face(frame, center, crop_config).color)
            if placed is not None:
                found.append(placed)
    if not found:
        raise ConfigError(f"{source}: no crop of a frame with |yaw| <= {MAX_YAW_DEG:g} with a face the detector finds")
    mean = np.mean([[p.x, p.y, p.size] for p in found], axis=0)
    return FacePlacement(*(float(v) for v in mean)), len(found), looked


def photo_row(detector: Any, path: str, reference: FacePlacement, crop_config: Any) -> dict[str, Any]:
    """One photo: located afresh from its colour alone (a new locator: its time includes loading
    the cascades, as a first photo's does), cropped, the face placed in the crop by ``detector``."""
    from sensors.crop import crop_face
    from sensors.locate.locator import HeadLocator, LocatorConfig
    from sensors.source import open_source, parse_uri

    with open_source(parse_uri(f"images:{path}")) as src:
        frame = src.read(10.0)
    row: dict[str, Any] = {"photo": os.path.basename(path), "located": False, "face_in_crop": False, "ok": False}
    if frame is None:
        return row
    head = HeadLocator(LocatorConfig(mode="detect")).locate(frame)
    if head is None:
        return row
    row.update(located=True, method=head.method, detect_ms=head.detect_ms, face_box_px=head.face_box_px)
    placed = face_placement(detector, crop_face(frame, head.center_color_mm, crop_config).color)
    if placed is None:
        return row
    offset = math.hypot(placed.x - reference.x, placed.y - reference.y)
    size_error = placed.size / reference.size - 1.0
    row.update(face_in_crop=True, x=placed.x, y=placed.y, size=placed.size, dx=placed.x - reference.x,
               dy=placed.y - reference.y, offset=offset, size_error=size_error,
               ok=bool(offset <= MAX_OFFSET and abs(size_error) <= MAX_SIZE_ERROR))
    return row


def evaluate_photos(photos: Sequence[str], source: str, every: int, max_frames: int | None, crop_config: Any,
                    progress: bool = False) -> dict[str, Any]:
    """The report: the virtual crops' reference placement and one row per photo."""
    from sensors.errors import FormatError
    from sensors.locate.colour import FaceDetector

    for p in photos:
        if not os.path.isfile(p):
            raise FormatError("no such photo", p)
    detector = FaceDetector()
    reference, with_face, looked = reference_placement(detector, source, every, max_frames, crop_config, progress)
    rows = [photo_row(detector, p, reference, crop_config) for p in photos]
    return {"source": source, "every": every, "max_frames": max_frames, "crop": crop_config.to_dict(),
            "max_offset": MAX_OFFSET, "max_size_error": MAX_SIZE_ERROR, "max_yaw_deg": MAX_YAW_DEG,
            "reference": {"x": reference.x, "y": reference.y, "size": reference.size,
                          "crops_with_face": with_face, "crops": looked},
            "photos": rows, "all_ok": all(r["ok"] for r in rows)}


def format_photo_table(report: dict[str, Any]) -> str:
    """The README's table: per photo, where the face sits in its crop against the virtual crops."""
    ref = report["reference"]
    lines = [f"virtual crops (|yaw| <= {report['max_yaw_deg']:g}): face box centre x {ref['x']:.3f}, "
             f"y {ref['y']:.3f}, width {ref['size']:.3f} of the crop (mean of {ref['crops_with_face']} of "
             f"{ref['crops']} crops with a face)", "",
             "| photo | method | box centre x, y | width | offset (limit "
             f"{report['max_offset']:g}) | width error (limit {100 * report['max_size_error']:.0f} %) | well framed |",
             "|---|---|---|---|---|---|---|"]
    for r in report["photos"]:
        if not r["face_in_crop"]:
            why = "no face found" if not r["located"] else "no face in its crop"
            lines.append(f"| {r['photo']} | {r.get('method', '-')} | {why} | | | | no |")
            continue
        lines.append(f"| {r['photo']} | {r['method']} | {r['x']:.3f}, {r['y']:.3f} | {r['size']:.3f} "
                     f"| {r['offset']:.3f} | {100 * r['size_error']:+.1f} % | {'yes' if r['ok'] else 'no'} |")
    return "\n".join(lines)
