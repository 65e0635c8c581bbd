"""The crop dataset file: aligned 100x100 crops written by ``build-dataset``, read by training,
evaluation and the verifier.

One ``.npz`` file (numpy's zip of arrays, no pickle) with, for N samples of S x S crops:

    color        (N, S, S, 3) uint8   RGB colour crop
    depth        (N, S, S)    uint8   sensor depth, 8-bit encoded around distance_mm (0 = invalid)
    depth_clean  (N, S, S)    uint8   noise-free depth, same encoding (only where the source knows it)
    face_mask    (N, S, S)    bool    the crop pixels whose (clean) depth is the narrow face area,
                                      hair, glasses, hands and other occluders removed (only where
                                      the source knows it: the virtual Kinect's people; format 2);
                                      every mask pixel has a valid 8-bit depth_clean (or depth)
    distance_mm  (N,)         float32 D, the head centre's z in colour-camera coordinates
    subject      (N,)         int32   identity
    frame        (N,)         int64   frame index within its source
    pose_deg     (N, 3)       float32 head yaw, pitch, roll in degrees (NaN where unknown)
    split        (N,)         uint8   0 train, 1 validation, 2 test (by identity, never by frame)
    meta         ()           str     JSON: crop config (size_px, window_x_mm, window_y_mm,
                                      half_range_mm), sources, command, counts, skipped frames,
                                      format_version

The format's version is ``meta["format_version"]`` (:data:`FORMAT_VERSION`, written by
:meth:`CropDataset.save`): 2 added the optional ``face_mask``; files without it are version 1
(the same arrays, no ``face_mask``) and load as before. A file of a newer version than this
code knows is refused (FormatError).
"""
from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensors.errors import FormatError
from sensors.filekind import ZIP, sniff

SPLITS = {"train": 0, "val": 1, "test": 2}
REQUIRED = ("color", "depth", "distance_mm", "subject", "frame", "pose_deg", "split")
OPTIONAL = ("depth_clean", "face_mask")
#: the dataset file format written here (``meta["format_version"]``; files without it are 1)
FORMAT_VERSION = 2


@dataclass(frozen=True, eq=False)
class CropDataset:
    color: np.ndarray
    depth: np.ndarray
    distance_mm: np.ndarray
    subject: np.ndarray
    frame: np.ndarray
    pose_deg: np.ndarray
    split: np.ndarray
    depth_clean: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    face_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.color)
        if self.color.ndim != 4 or self.color.shape[-1] != 3 or self.color.dtype != np.uint8:
            raise FormatError(f"color must be (N, S, S, 3) uint8, got {self.color.shape} {self.color.dtype}")
        s = self.color.shape[1:3]
        for name in ("depth", "depth_clean"):
            a = getattr(self, name)
            if a is not None and (a.shape != (n, *s) or a.dtype != np.uint8):
                raise FormatError(f"{name} must be {(n, *s)} uint8, got {a.shape} {a.dtype}")
        if self.face_mask is not None and (self.face_mask.shape != (n, *s) or self.face_mask.dtype != np.bool_):
            raise FormatError(f"face_mask must be {(n, *s)} bool, got {self.face_mask.shape} {self.face_mask.dtype}")
        for name in ("distance_mm", "subject", "frame", "split"):
            if len(getattr(self, name)) != n:
                raise FormatError(f"{name} has {len(getattr(self, name))} entries for {n} samples")
        if self.pose_deg.shape != (n, 3):
            raise FormatError(f"pose_deg must be ({n}, 3), got {self.pose_deg.shape}")

    def __len__(self) -> int:
        return len(self.color)

    @property
    def size_px(self) -> int:
        return int(self.color.shape[1])

    @property
    def target(self) -> np.ndarray:
        """The training target: clean depth where the data has it, else the sensor depth."""
        return self.depth_clean if self.depth_clean is not None else self.depth

    def subset(self, mask_or_index: np.ndarray) -> "CropDataset":
        idx = np.asarray(mask_or_index)
        return CropDataset(
            color=self.color[idx], depth=self.depth[idx], distance_mm=self.distance_mm[idx],
            subject=self.subject[idx], frame=self.frame[idx], pose_deg=self.pose_deg[idx],
            split=self.split[idx],
            depth_clean=None if self.depth_clean is None else self.depth_clean[idx],
            meta=self.meta,
            face_mask=None if self.face_mask is None else self.face_mask[idx],
        )

    def split_mask(self, name: str) -> np.ndarray:
        """Which crops are in split ``name`` (``train``, ``val``, ``test``, or ``all``)."""
        if name == "all":
            return np.ones(len(self), bool)
        if name not in SPLITS:
            raise FormatError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return self.split == SPLITS[name]

    def select_split(self, name: str) -> "CropDataset":
        return self.subset(self.split_mask(name))

    def save(self, path: str | os.PathLike[str]) -> None:
        arrays = {
            "color": self.color, "depth": self.depth, "distance_mm": self.distance_mm.astype(np.float32),
            "subject": self.subject.astype(np.int32), "frame": self.frame.astype(np.int64),
            "pose_deg": self.pose_deg.astype(np.float32), "split": self.split.astype(np.uint8),
            "meta": np.array(json.dumps({**self.meta, "format_version": FORMAT_VERSION})),
        }
        if self.depth_clean is not None:
            arrays["depth_clean"] = self.depth_clean
        if self.face_mask is not None:
            arrays["face_mask"] = self.face_mask
        from models.common.files import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def load_dataset(path: str | os.PathLike[str]) -> CropDataset:
    """Read a dataset file; FormatError naming the file when it is missing or malformed."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FormatError("dataset file does not exist (make one with `launch.py build-dataset`)", path)
    kind = sniff(path)
    if kind != ZIP:  # numpy would try it as a pickle and advise allow_pickle
        raise FormatError("not a dataset file (an .npz from `launch.py build-dataset`)"
                          + (f": it is {kind}" if kind else ""), path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in REQUIRED if k not in z.files]
            if missing:
                raise FormatError(f"not a facedepth dataset: missing arrays {', '.join(missing)}", path)
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise FormatError(f"not a readable dataset file ({exc})", path) from None
    try:
        meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
        version = meta.get("format_version", 1) if isinstance(meta, dict) else 1
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise FormatError(f"dataset format_version must be a positive integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise FormatError(f"dataset format version {version} is newer than this code reads ({FORMAT_VERSION})")
        return CropDataset(meta=meta, **{k: v for k, v in arrays.items() if k in REQUIRED or k in OPTIONAL})
    except FormatError as exc:
        raise FormatError(exc.message, path) from None
    except json.JSONDecodeError:
        raise FormatError("dataset metadata is not valid JSON", path) from None


def load_datasets(paths: Sequence[str | os.PathLike[str]]) -> CropDataset:
    """The first file of ``paths`` with the TRAINING crops of the others added
    (:func:`with_extra_training`): what ``--data A --data B ...`` of the training commands means."""
    first = load_dataset(paths[0])
    if len(paths) == 1:
        return first
    return with_extra_training(first, [(os.fspath(p), load_dataset(p)) for p in paths[1:]])


def with_extra_training(first: CropDataset, extra: list[tuple[str, CropDataset]]) -> CropDataset:
    """``first`` followed by the TRAINING crops of each ``(name, dataset)`` in ``extra``: more
    people to train on, while validation and test stay those of ``first``.

    Subject ids name people across the files (build them with one ``identity_seed`` and
    disjoint subject ranges). The crop geometry must match, and no extra training identity may
    be one of ``first``'s validation or test identities (FormatError naming the file). The metadata is ``first``'s,
    with the extra files' training sources added to ``sources`` and their names listed under
    ``extra_training_data``.
    """
    held_out = set(np.unique(first.subject[first.split != SPLITS["train"]]).tolist())
    parts = [first]
    meta = dict(first.meta)
    sources = list(meta.get("sources", []))
    for name, ds in extra:
        if ds.size_px != first.size_px or ds.meta.get("crop") != first.meta.get("crop"):
            raise FormatError(f"crop geometry {ds.meta.get('crop')} differs from the first dataset's "
                              f"{first.meta.get('crop')}", name)
        train = ds.subset(ds.split == SPLITS["train"])
        leak = sorted(held_out & set(np.unique(train.subject).tolist()))
        if leak:
            raise FormatError(f"training identities {leak[:5]} are validation or test identities of the first dataset", name)
        if (train.depth_clean is None) != (first.depth_clean is None):
            raise FormatError("one dataset has noise-free depth and the other does not", name)
        parts.append(train)
        # build-dataset's sources say their split; a bare URI (other tools' files) is kept as it is
        sources += [s for s in ds.meta.get("sources", []) if not isinstance(s, dict) or s.get("split") == "train"]
    meta["sources"] = sources
    meta["extra_training_data"] = [os.path.basename(name) for name, _ in extra]

    def cat(attr: str) -> np.ndarray | None:
        arrays = [getattr(p, attr) for p in parts]
        return None if arrays[0] is None else np.concatenate(arrays)

    # the face mask only where every part has it (it is an optional annotation, not a target)
    face_mask = cat("face_mask") if all(p.face_mask is not None for p in parts) else None
    return CropDataset(color=cat("color"), depth=cat("depth"), distance_mm=cat("distance_mm"), subject=cat("subject"),
                       frame=cat("frame"), pose_deg=cat("pose_deg"), split=cat("split"),
                       depth_clean=cat("depth_clean"), meta=meta, face_mask=face_mask)
