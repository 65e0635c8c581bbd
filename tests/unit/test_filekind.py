"""sensors.filekind: what a file is, from its first bytes (for one-line wrong-kind errors)."""
from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np

from sensors.filekind import EMPTY, ZIP, sniff


def test_images_archives_and_recordings_are_told_apart(tmp_path):
    img = np.full((8, 8, 3), 7, np.uint8)
    for ext, kind in ((".png", "a PNG image"), (".jpg", "a JPEG image"), (".bmp", "a BMP image"),
                      (".tif", "a TIFF image")):
        p = tmp_path / f"x{ext}"
        assert cv2.imwrite(str(p), img)
        assert sniff(p) == kind, ext
    npz = tmp_path / "d.npz"
    np.savez(npz, a=np.zeros(3))
    assert sniff(npz) == ZIP
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x", b"y")
    (tmp_path / "c.pt").write_bytes(buf.getvalue())
    assert sniff(tmp_path / "c.pt") == ZIP
    (tmp_path / "r.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(20))
    assert sniff(tmp_path / "r.mcap") == "an MCAP recording"


def test_empty_folders_text_and_missing_files(tmp_path):
    (tmp_path / "e").write_bytes(b"")
    assert sniff(tmp_path / "e") == EMPTY
    assert sniff(tmp_path) == "a folder"
    (tmp_path / "cam.yaml").write_text("%YAML:1.0\ncamera_matrix: []\n")
    assert sniff(tmp_path / "cam.yaml") is None  # text: the reader decides
    assert sniff(tmp_path / "missing") is None   # the reader reports it missing
