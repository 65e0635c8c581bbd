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


def test_a_failed_write_names_the_users_file_not_the_temporary(tmp_path):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "report.json"  # its "folder" is a file: fails for root too
    with pytest.raises(OSError) as e:
        write_json(out, {"a": 1})
    assert e.value.filename == str(out) and ".partial" not in str(e.value)


def test_a_pipe_is_written_as_it_is_never_replaced_by_a_file(tmp_path):
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_json(fifo, {"a": 1})
    reader.join(timeout=10)
    assert got == [b'{\n "a": 1\n}\n']
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
