"""Writers of tiny, valid dataset folders for tests: Biwi, Pandora, TUM RGB-D, photos, videos.

They write the formats byte by byte from their published descriptions (struct, text, PNG),
independently of the project's readers, so reader tests check the readers against the format
and not against themselves. Every writer returns what it wrote (the ground truth) so a test
can compare values::

    from tests.support.formats import write_biwi
    info = write_biwi(tmp_path / "hpdb", {1: [3, 4, 7]})
    # -> biwi:{info.root}; info.frames[(1, 4)].depth_mm is the depth written for frame 4

Scenes are a head-sized sphere (radius 90 mm) in front of a wall at 1500 mm, drawn as a pale
disc on a darker colour image; sizes default to small images so tests stay fast.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


@dataclass
class WrittenFrame:
    color_rgb: np.ndarray
    depth_mm: np.ndarray | None
    head_center_mm: np.ndarray | None = None
    head_rotation: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Written:
    root: Path
    frames: dict = field(default_factory=dict)  # key -> WrittenFrame
    order: list = field(default_factory=list)  # keys in the order a reader should deliver them


# -- scene --------------------------------------------------------------------------------
def sphere_depth(width: int, height: int, fx: float, fy: float, cx: float, cy: float,
                 center_mm, radius_mm: float = 90.0, wall_mm: float = 1500.0,
                 holes: bool = True) -> np.ndarray:
    """uint16 depth (mm) of a sphere in front of a wall, with a few zero (no reading) pixels."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = (u - cx) / fx, (v - cy) / fy
    c = np.asarray(center_mm, dtype=np.float64)
    # ray p = z * (dx, dy, 1); solve |p - c| = r for the nearest z
    a = dx * dx + dy * dy + 1.0
    b = -2.0 * (dx * c[0] + dy * c[1] + c[2])
    cc = c @ c - radius_mm ** 2
    disc = b * b - 4 * a * cc
    z = np.full((height, width), wall_mm)
    hit = disc >= 0
    z[hit] = (-b[hit] - np.sqrt(disc[hit])) / (2 * a[hit])
    depth = np.rint(z).astype(np.uint16)
    if holes:
        depth[0, :3] = 0
        depth[-1, -2:] = 0
    return depth


def scene_color(width: int, height: int, u0: float, v0: float, r_px: float, seed: int = 0) -> np.ndarray:
    """RGB uint8: a pale disc (the face) on a darker, slightly textured background."""
    rng = np.random.default_rng(seed)
    img = rng.integers(20, 60, size=(height, width, 3), dtype=np.uint8)
    cv2.circle(img, (int(round(u0)), int(round(v0))), max(int(r_px), 1), (220, 180, 160), -1)
    img[0, 0] = (255, 0, 0)  # a red top-left pixel: catches RGB/BGR swaps
    return img


def rotation_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


# -- Biwi ---------------------------------------------------------------------------------
def biwi_depth_bin_bytes(depth: np.ndarray) -> bytes:
    """Run-length encode ``depth`` (HxW, mm) as a Biwi depth.bin, by the published layout."""
    h, w = depth.shape
    flat = depth.astype(np.int64).ravel()
    out = [struct.pack("<ii", w, h)]
    i, n = 0, flat.size
    while i < n:
        j = i
        while j < n and flat[j] == 0:
            j += 1
        k = j
        while k < n and flat[k] != 0:
            k += 1
        out.append(struct.pack("<ii", j - i, k - j))
        out.append(struct.pack(f"<{k - j}h", *flat[j:k].tolist()))
        i = k
    return b"".join(out)


def biwi_cal_text(k, dist, r, t, width: int, height: int) -> str:
    rows = [" ".join(f"{x:g}" for x in row) for row in np.asarray(k)]
    rows += ["", " ".join(f"{x:g}" for x in dist), ""]
    rows += [" ".join(f"{x:g}" for x in row) for row in np.asarray(r)]
    rows += ["", " ".join(f"{x:g}" for x in t), "", f"{width} {height}", ""]
    return "\n".join(rows)


def biwi_pose_text(rotation, center_mm) -> str:
    """A Biwi pose.txt: the rotation's rows, a blank line, the centre (mm)."""
    rows = "\n".join(" ".join(f"{x:.6f}" for x in row) for row in np.asarray(rotation))
    return rows + "\n\n" + " ".join(f"{x:.6f}" for x in center_mm) + "\n"


#: Biwi's cameras scaled from 640x480: depth f = 575.816, colour f = 517.679, T = (-24, 5.9, -13.2)
BIWI_R = np.array([[0.999947, 0.00432361, 0.00929419],
                   [-0.00446314, 0.999877, 0.0150443],
                   [-0.009228, -0.015085, 0.999843]])
BIWI_T = np.array([-24.0198, 5.8896, -13.2308])


#: Biwi's pose.txt centre (its face template's) lies this far in front of the skull centre, along
#: the head's view: 66 mm on the real subject 01, frame 3
BIWI_TEMPLATE_IN_FRONT_MM = 66.0


def write_biwi(root, sequences: dict[int, list[int]] | None = None, width: int = 64, height: int = 48) -> Written:
    """An hpdb folder: sequences {number: [frame numbers]} with depth.bin, rgb.png, pose.txt.

    The sphere (the head) is centred on the skull centre, ``WrittenFrame.head_center_mm``; the
    pose file holds the centre Biwi annotates, :data:`BIWI_TEMPLATE_IN_FRONT_MM` in front of it
    along the head's view (``extra["pose_center_mm"]``)."""
    root = Path(root)
    sequences = sequences or {1: [3, 4, 7]}
    s = width / 640.0
    fd, fc = 575.816 * s, 517.679 * s
    dk = np.array([[fd, 0, (320 + 0.5) * s - 0.5], [0, fd, (240 + 0.5) * s - 0.5], [0, 0, 1]])
    ck = np.array([[fc, 0, (320 + 0.5) * s - 0.5], [0, fc, (240.5 + 0.5) * s - 0.5], [0, 0, 1]])
    out = Written(root)
    for seq, numbers in sorted(sequences.items()):
        folder = root / f"{seq:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "depth.cal").write_text(biwi_cal_text(dk, [0, 0, 0, 0], np.eye(3), [0, 0, 0], width, height))
        (folder / "rgb.cal").write_text(biwi_cal_text(ck, [0, 0, 0, 0], BIWI_R, BIWI_T, width, height))
        for n in numbers:
            center = np.array([10.0 * (n % 3) - 10.0, -20.0 + n, 900.0 + 5 * n])
            rot = rotation_y(3.0 * n)
            depth = sphere_depth(width, height, fd, fd, dk[0, 2], dk[1, 2], center)
            uv = ck[:2, :2] @ ((BIWI_R @ center + BIWI_T)[:2] / (BIWI_R @ center + BIWI_T)[2]) + ck[:2, 2]
            color = scene_color(width, height, uv[0], uv[1], fc * 90 / center[2], seed=seq * 1000 + n)
            stem = folder / f"frame_{n:05d}"
            (Path(str(stem) + "_depth.bin")).write_bytes(biwi_depth_bin_bytes(depth))
            cv2.imwrite(str(stem) + "_rgb.png", cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
            pose_center = center + rot @ np.array([0.0, 0.0, -BIWI_TEMPLATE_IN_FRONT_MM])
            (Path(str(stem) + "_pose.txt")).write_text(biwi_pose_text(rot, pose_center))
            out.frames[(seq, n)] = WrittenFrame(color, depth, center, np.round(rot, 6),
                                                {"pose_center_mm": np.round(pose_center, 6)})
            out.order.append((seq, n))
        (root / f"{seq:02d}.obj").write_text("# head template (not read)\n")
    return out


def write_biwi_from_frames(root, frames, pose: bool = True, in_front_mm: float = BIWI_TEMPLATE_IN_FRONT_MM) -> Written:
    """One Biwi sequence folder (``root/01``) holding ``frames`` (e.g. posed virtual Kinect frames
    with their ground truth) in Biwi's layout and their own cameras; with ``pose``, pose files
    whose centre lies ``in_front_mm`` (:data:`BIWI_TEMPLATE_IN_FRONT_MM`, as Biwi annotates it)
    in front of the frame's skull centre along the head's view. ``WrittenFrame.head_center_mm`` is the frame's
    skull centre (depth-camera mm)."""
    root = Path(root)
    seq = root / "01"
    seq.mkdir(parents=True, exist_ok=True)
    out = Written(root)
    for n, f in enumerate(frames):
        if n == 0:
            dc, cc, ext = f.depth_camera, f.color_camera, f.depth_to_color
            (seq / "depth.cal").write_text(biwi_cal_text(dc.matrix(), [0, 0, 0, 0], np.eye(3), [0, 0, 0],
                                                         dc.width, dc.height))
            (seq / "rgb.cal").write_text(biwi_cal_text(cc.matrix(), [0, 0, 0, 0], ext.rotation, ext.translation_mm,
                                                       cc.width, cc.height))
        stem = str(seq / f"frame_{n:05d}")
        Path(stem + "_depth.bin").write_bytes(biwi_depth_bin_bytes(f.depth_mm))
        cv2.imwrite(stem + "_rgb.png", cv2.cvtColor(f.color, cv2.COLOR_RGB2BGR))
        rot = f.head_rotation
        pose_center = f.head_center_mm + rot @ np.array([0.0, 0.0, -in_front_mm])
        if pose:
            Path(stem + "_pose.txt").write_text(biwi_pose_text(rot, pose_center))
        out.frames[(1, n)] = WrittenFrame(f.color, f.depth_mm, f.head_center_mm.copy(), rot.copy(),
                                          {"pose_center_mm": pose_center})
        out.order.append((1, n))
    return out


# -- Pandora ------------------------------------------------------------------------------
KINECT2_DEPTH = (365.5, 365.5, 254.9, 205.4, 512, 424)
KINECT2_COLOR = (1081.4, 1081.4, 959.5, 539.5, 1920, 1080)


def pandora_record(frame_num: int, head_m, head_px, yaw=10.0, pitch=-5.0, roll=2.0) -> dict:
    """A data.json record in the layout described for Pandora: frame_num, orientation.euler,
    and Kinect body joints (camera space in metres, colour-image pixels), head among them."""
    return {
        "frame_num": frame_num,
        "orientation": {"euler": {"yaw": yaw, "pitch": pitch, "roll": roll}},
        "joints": {
            "head": {"3D": list(map(float, head_m)), "color": list(map(float, head_px))},
            "neck": {"3D": [float(head_m[0]), float(head_m[1]) - 0.15, float(head_m[2])],
                     "color": [float(head_px[0]), float(head_px[1]) + 80.0]},
        },
    }


def write_pandora(root, subjects: dict[int, list[str]] | None = None, frames: int = 3,
                  depth_size: tuple[int, int] = (64, 53), color_size: tuple[int, int] = (96, 54),
                  bad_records: int = 0) -> Written:
    """Pandora layout: root/NN/<sequence>/RGB/%06d_RGB.png, DEPTH/%06d_DEPTH.png, data.json.

    Images are small (the Kinect v2 cameras scaled down). ``bad_records`` appends that many
    unparseable records to the first sequence's data.json. Head joints follow the Kinect SDK
    camera space (metres, y up, images mirrored) so the head projects where it is drawn.
    """
    root = Path(root)
    subjects = subjects or {10: ["base_1_ID10"]}
    dw, dh = depth_size
    cw, ch = color_size
    sd, sc = dw / 512.0, cw / 1920.0
    dfx, dcx, dcy = 365.5 * sd, (254.9 + 0.5) * sd - 0.5, (205.4 + 0.5) * (dh / 424.0) - 0.5
    cfx, ccx, ccy = 1081.4 * sc, (959.5 + 0.5) * sc - 0.5, (539.5 + 0.5) * (ch / 1080.0) - 0.5
    out = Written(root)
    first = True
    for subj, seqs in sorted(subjects.items()):
        for seq in seqs:
            folder = root / f"{subj:02d}" / seq
            (folder / "RGB").mkdir(parents=True, exist_ok=True)
            (folder / "DEPTH").mkdir(parents=True, exist_ok=True)
            records = []
            for i in range(frames):
                head_mm = np.array([20.0 * i - 20.0, -30.0, 1100.0 + 10 * i])  # our axes: y down
                depth = sphere_depth(dw, dh, dfx, 365.5 * dh / 424.0, dcx, dcy, head_mm)
                head_c = head_mm + np.array([52.0, 0.0, 0.0])
                u = 1081.4 * head_c[0] / head_c[2] + 959.5
                v = 1081.4 * head_c[1] / head_c[2] + 539.5
                color = scene_color(cw, ch, u * sc, v * sc, cfx * 90 / head_c[2], seed=subj * 100 + i)
                cv2.imwrite(str(folder / "RGB" / f"{i:06d}_RGB.png"), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
                cv2.imwrite(str(folder / "DEPTH" / f"{i:06d}_DEPTH.png"), depth)
                head_sdk_m = [head_mm[0] / 1000.0, -head_mm[1] / 1000.0, head_mm[2] / 1000.0]
                records.append(pandora_record(i, head_sdk_m, [u, v], yaw=5.0 * i))
                out.frames[(seq, i)] = WrittenFrame(color, depth, head_mm, None,
                                                    {"subject": subj, "yaw": 5.0 * i})
                out.order.append((seq, i))
            if first and bad_records:
                for j in range(bad_records):
                    records.append({"frame_num": frames + j, "orientation": "unknown"})
            first = False
            (folder / "data.json").write_text(json.dumps(records))
    return out


# -- TUM RGB-D ----------------------------------------------------------------------------
def write_tum(root, n: int = 4, width: int = 64, height: int = 48, t0: float = 1305031102.175304,
              depth_lag_s: float = 0.012, scale_per_m: float = 5000.0) -> Written:
    """A TUM RGB-D folder: rgb/, depth/, rgb.txt, depth.txt (depth stamps ``depth_lag_s``
    after colour), depth PNGs at ``scale_per_m`` (TUM: 5000 per metre), one extra depth
    image with no colour partner."""
    root = Path(root)
    (root / "rgb").mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(parents=True, exist_ok=True)
    f = 525.0 * width / 640.0
    cx, cy = (width - 1) / 2, (height - 1) / 2
    rgb_lines = ["# color images", "# file: 'rgbd_dataset_fixture.bag'", "# timestamp filename"]
    depth_lines = ["# depth maps", "# file: 'rgbd_dataset_fixture.bag'", "# timestamp filename"]
    out = Written(root)
    for i in range(n):
        tc = t0 + i / 30.0
        td = tc + depth_lag_s
        center = np.array([0.0, 0.0, 800.0 + 20 * i])
        depth_mm = sphere_depth(width, height, f, f, cx, cy, center)
        stored = np.rint(depth_mm.astype(np.float64) * scale_per_m / 1000.0).astype(np.uint16)
        color = scene_color(width, height, cx, cy, f * 90 / center[2], seed=i)
        cv2.imwrite(str(root / "rgb" / f"{tc:.6f}.png"), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "depth" / f"{td:.6f}.png"), stored)
        rgb_lines.append(f"{tc:.6f} rgb/{tc:.6f}.png")
        depth_lines.append(f"{td:.6f} depth/{td:.6f}.png")
        out.frames[i] = WrittenFrame(color, depth_mm, extra={"t_color": tc, "t_depth": td, "stored": stored})
        out.order.append(i)
    lone = t0 + n / 30.0 + 5.0  # a depth image far from any colour image: must stay unpaired
    cv2.imwrite(str(root / "depth" / f"{lone:.6f}.png"), np.zeros((height, width), np.uint16))
    depth_lines.append(f"{lone:.6f} depth/{lone:.6f}.png")
    (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    return out


# -- photos and videos --------------------------------------------------------------------
def write_photos(folder, names=("img10.png", "img2.png", "img1.jpg"), width: int = 40, height: int = 30) -> Written:
    """A folder of photos named so that name order differs from plain string order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = Written(folder)
    for i, name in enumerate(names):
        img = scene_color(width, height, width / 2, height / 2, height / 4, seed=i)
        cv2.imwrite(str(folder / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        out.frames[name] = WrittenFrame(img, None)
    (folder / "notes.txt").write_text("not an image\n")
    return out


def write_video(path, n: int = 6, width: int = 64, height: int = 48, fps: float = 10.0) -> Written:
    """An MJPG .avi whose frame i is a flat grey of level 20 + 30 i (robust to compression)."""
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    out = Written(path)
    for i in range(n):
        level = 20 + 30 * i
        img = np.full((height, width, 3), level, np.uint8)
        writer.write(img)
        out.frames[i] = WrittenFrame(img, None, extra={"level": level})
        out.order.append(i)
    writer.release()
    return out
