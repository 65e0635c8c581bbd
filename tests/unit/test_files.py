"""Whole-file writes (models/common/files.py): complete or not at all."""
from __future__ import annotations

import hashlib

import pytest

from models.common.files import atomic_path, file_sha256, write_json


def test_a_finished_write_replaces_the_file(tmp_path):
    out = tmp_path / "report.json"
    out.write_text("old")
    write_json(out, {"a": 1})
    assert out.read_text() == '{\n "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "model.onnx"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(out, suffix=".onnx") as tmp:
            assert tmp.endswith(".partial.onnx")
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("export failed")
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_sha256_of_the_bytes(tmp_path):
    p = tmp_path / "x.bin"
    data = bytes(range(256)) * 5000  # more than one read block
    p.write_bytes(data)
    assert file_sha256(p) == hashlib.sha256(data).hexdigest()
