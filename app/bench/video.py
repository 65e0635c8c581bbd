"""``launch.py bench --video``: how fast a video and a photo folder play, headless and in the window.

A synthetic clip (a real photo, matplotlib's ``grace_hopper.jpg``, sliding and bobbing across a
plain background as a head moves; 960x540 at 30 fps by default) is written to a temporary
folder, with its frames as a folder of JPEG photos beside it, and played the way a user plays
them, each in a process of its own:

- ``run --headless`` on ``images:CLIP`` (paced at the video's own rate, the default), on
  ``images:CLIP,pace=off`` (as fast as the pipeline goes) and on ``images:FOLDER,pace=on``
  (photos at 30 fps); the rate is the report's ``fps`` (frames over the run's wall time), with
  its stage timings (``read`` is waiting for the frame's time plus decoding it);
- the window, off-screen, on ``images:CLIP`` (``run --screenshot --report``): new frames drawn
  per second from the first frame drawn to the last.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from app.bench.plan import ROOT
from sensors.errors import FacedepthError

#: the clip's size and rate: a 960x540 web video at 30 fps
CLIP_SIZE_PX = (960, 540)
CLIP_FPS = 30.0
#: the portrait's size in the clip (a head about as large as a webcam shows it at arm's length)
FACE_SIZE_PX = (256, 300)
#: the headless stages whose p50 the report lists
HEADLESS_STAGES = ("read", "locate", "crop", "infer", "score", "total")


def write_clip(path: Path, seconds: float, fps: float = CLIP_FPS, size_px: tuple[int, int] = CLIP_SIZE_PX,
               folder: Path | None = None) -> dict[str, Any]:
    """Write the synthetic clip (MJPG in AVI, which every OpenCV build writes) and, with ``folder``,
    its frames as numbered JPEG photos there; returns what was written."""
    import cv2
    import matplotlib

    photo_path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    photo = cv2.imread(str(photo_path))
    if photo is None:
        raise FacedepthError("matplotlib's sample photo cannot be read", str(photo_path))
    w, h = size_px
    fw, fh = FACE_SIZE_PX
    face = cv2.resize(photo, (fw, fh), interpolation=cv2.INTER_AREA)
    frames = max(2, int(round(seconds * fps)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise FacedepthError("OpenCV cannot write an MJPG video here", str(path))
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    span_x, span_y = w - fw, max(h - fh, 0)
    for i in range(frames):
        t = i / fps
        # across the frame and back every 5 s, bobbing up and down every 3 s: a head moving
        x = int(round(span_x * (0.2 + 0.6 * (0.5 - 0.5 * np.cos(2 * np.pi * t / 5.0)))))
        y = int(round(span_y * (0.5 + 0.3 * np.sin(2 * np.pi * t / 3.0))))
        frame = np.full((h, w, 3), 70, np.uint8)
        frame[y:y + fh, x:x + fw] = face[:h - y]
        writer.write(frame)
        if folder is not None:
            cv2.imwrite(str(folder / f"frame{i:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    writer.release()
    return {"frames": frames, "fps": fps, "size": f"{w}x{h}", "seconds": round(frames / fps, 3),
            "codec": "MJPG", "photo": "matplotlib sample_data/grace_hopper.jpg", "face_px": f"{fw}x{fh}"}


def _launch(args: list[str], timeout_s: float, env: dict[str, str] | None = None) -> None:
    """``launch.py ARGS`` in a fresh interpreter (its own memory and threads, as a user runs it)."""
    cmd = [sys.executable, str(ROOT / "launch.py"), *args]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise FacedepthError(f"launch.py {args[0]} did not finish within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FacedepthError(f"launch.py {' '.join(args[:2])} failed (exit {proc.returncode}): {err[:300]}")


def _model_args(model: Path, verifier: Path | None) -> list[str]:
    return ["--model", str(model)] + (["--verifier", str(verifier)] if verifier is not None else [])


def play_headless(uri: str, model: Path, verifier: Path | None, workdir: Path, name: str,
                  timeout_s: float) -> dict[str, Any]:
    """``run --headless`` on ``uri``: frames, wall time, frames per second, faces found and the
    stages' p50 (ms)."""
    report_path = workdir / f"{name}.json"
    _launch(["run", "--headless", "--source", uri, *_model_args(model, verifier), "--report", str(report_path),
             "--force"], timeout_s)
    r = json.loads(report_path.read_text())
    return {"source": _shown(uri, workdir), "frames": r["frames"], "elapsed_s": r["elapsed_s"], "fps": r["fps"],
            "faces": sum(1 for f in r["per_frame"] if f["face"]),
            **{f"stages_ms_{q}": {k: None if r["stages_ms"][k][q] is None else round(r["stages_ms"][k][q], 3)
                                  for k in HEADLESS_STAGES if k in r["stages_ms"]} for q in ("p50", "p95")}}


def play_gui(uri: str, frames: int, model: Path, verifier: Path | None, workdir: Path,
             timeout_s: float) -> dict[str, Any]:
    """The window on ``uri`` off-screen until ``frames`` frames were processed and drawn
    (``run --screenshot --report``): :func:`app.gui.display_figures`."""
    report_path = workdir / "gui.json"
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")  # an xcb display (Xvfb, a desktop) is used when named
    _launch(["run", "--source", uri, *_model_args(model, verifier), "--max-frames", str(frames), "--screenshot",
             str(workdir / "gui.png"), "--report", str(report_path), "--force"], timeout_s, env)
    figures = dict(json.loads(report_path.read_text()))
    figures["source"] = _shown(figures["source"], workdir)
    return figures


def _shown(uri: str, workdir: Path) -> str:
    """A source URI as the report shows it: the temporary folder as ``TMP`` (no machine's folders)."""
    return uri.replace(str(workdir), "TMP")


def video_bench(model: Path, verifier: Path | None, workdir: Path, seconds: float,
                say: Any = None) -> dict[str, Any]:
    """Every playback of the module docstring on a ``seconds``-long clip written into ``workdir``."""
    say = say or (lambda text: None)
    clip, folder = workdir / "clip.avi", workdir / "photos"
    say(f"writing a {seconds:g}-s {CLIP_SIZE_PX[0]}x{CLIP_SIZE_PX[1]} {CLIP_FPS:g} fps clip and its frames as photos ...")
    info = write_clip(clip, seconds, folder=folder)
    # each run at least the clip's length, plus start-up; generous for a busy machine
    timeout = 120.0 + 10.0 * info["seconds"]
    out: dict[str, Any] = {"clip": info}
    say("playing it headless, paced at its rate ...")
    out["headless_paced"] = play_headless(f"images:{clip}", model, verifier, workdir, "paced", timeout)
    say("playing it headless, as fast as possible (pace=off) ...")
    out["headless_fast"] = play_headless(f"images:{clip},pace=off", model, verifier, workdir, "fast", timeout)
    say("playing its frames as a photo folder, headless, paced (pace=on) ...")
    out["folder_paced"] = play_headless(f"images:{folder},pace=on", model, verifier, workdir, "folder", timeout)
    say("playing it in the window, off-screen ...")
    out["gui_paced"] = play_gui(f"images:{clip}", info["frames"], model, verifier, workdir, timeout)
    return out
