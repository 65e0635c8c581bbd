"""What a file is, from its first bytes: for one-line errors when a file of the wrong kind is
given (a photo as a calibration file, a photo as a dataset), instead of the reader's own
complaint (OpenCV's ``SystemError``, numpy's advice about ``allow_pickle``).

    kind = sniff(path)          # "a PNG image", "an empty file", ... or None when unknown
    if kind != "a zip archive (.npz)":
        raise FormatError(f"not a dataset file: it is {kind}", path)
"""
from __future__ import annotations

import os

#: leading bytes -> what the file is, as it reads in "it is ..."
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x89MCAP", "an MCAP recording"),
    (b"PK\x03\x04", "a zip archive (.npz, .pt)"),
    (b"PK\x05\x06", "a zip archive (.npz, .pt)"),
    (b"\x93NUMPY", "a numpy array (.npy)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89HDF", "an HDF5 file"),
    (b"glTF", "a glTF model (.glb)"),
)

ZIP = "a zip archive (.npz, .pt)"
EMPTY = "an empty file"


def sniff(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is by its signature ("a PNG image", "an empty file", "a folder"), or
    None when it has no signature this knows (text, ONNX, anything else); never raises for
    a missing or unreadable file (None: the reader then reports it)."""
    try:
        if os.path.isdir(path):
            return "a folder"
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if not head:
        return EMPTY
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if head[4:8] == b"ftyp":
        return "a video (MP4/MOV)"
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"AVI "):
        return "a WebP image" if head[8:12] == b"WEBP" else "an AVI video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "a video (MKV/WebM)"
    return None
