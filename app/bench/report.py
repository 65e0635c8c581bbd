"""The ``launch.py bench`` report: the targets met or missed, and the plain-text tables."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.bench.plan import (TARGET_FPS, TARGET_GENERATOR_MS, TARGET_GPU_CROPS_PER_S, TARGET_LATENCY_P99_MS,
                            TARGET_RSS_GROWTH_MB, TARGET_VIDEO_GUI_FPS, TARGET_VIDEO_PACED_FPS)


def _entry(value: Any, compare: Callable[[Any, Any], bool], target: float, note: str) -> dict[str, Any]:
    return {"value": value, "target": target, "met": None if value is None else bool(compare(value, target)),
            "note": note}


def targets(report: dict[str, Any], soak: int) -> dict[str, Any]:
    """Each performance target (docs/design.md, "Targets") with the measured value and whether it is
    met (None: not measured)."""
    import operator

    pipe, gen, mem = report["pipeline"], report["generator"], report["memory"]
    paced = f"30 fps pacing over {pipe.get('paced_frames_total')} frames (the target asks for 3000)"
    soaked = f" and a {soak}-frame soak" if soak else " (the target asks for 10,000 frames: --soak 10000)"

    return {
        "pipeline_fps>=90": _entry(pipe["fps"], operator.ge, TARGET_FPS,
                                  "threaded pipeline, recording replayed as fast as possible"),
        "latency_p99_ms<=20": _entry(pipe["latency_ms_p99"], operator.le, TARGET_LATENCY_P99_MS, paced),
        "dropped==0": _entry(pipe["dropped"], operator.eq, 0, paced),
        "generator_ms_p50<=3": _entry(gen["onnx_ms_p50"], operator.le, TARGET_GENERATOR_MS,
                                     "ONNX Runtime, CPU, 1 thread, batch 1"),
        "rss_growth_mb<50": _entry(mem["rss_growth_mb"], operator.lt, TARGET_RSS_GROWTH_MB,
                                  "largest growth after warm-up over the pipeline runs" + soaked),
        "gpu_crops_per_s_batch32>=5000": _entry(gen.get("gpu_crops_per_s_batch32"), operator.ge, TARGET_GPU_CROPS_PER_S,
                                               "only on a machine where a GPU provider loads"),
    }


def video_targets(video: dict[str, Any]) -> dict[str, Any]:
    """The video playback targets (``bench --video``) with the measured rates."""
    import operator

    clip = video["clip"]
    what = f"{clip['size']} {clip['fps']:g} fps clip, {clip['frames']} frames"
    return {
        "video_paced_fps>=29": _entry(video["headless_paced"]["fps"], operator.ge, TARGET_VIDEO_PACED_FPS,
                                      f"run --headless, {what}, paced at its rate"),
        "video_gui_drawn_fps>=25": _entry(video["gui_paced"]["drawn_fps"], operator.ge, TARGET_VIDEO_GUI_FPS,
                                          f"the window, {what}: new frames drawn per second"),
    }


def _machine_lines(report: dict[str, Any], title: str) -> list[str]:
    m = report["machine"]
    return [
        f"facedepth {title}: {report['date']}, commit {report['commit']}",
        f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"{'GPU: ' + ', '.join(m['gpu']) if m['gpu'] else 'no GPU'}; load average "
        f"{'/'.join(str(x) for x in m['load_average_before'])} before, "
        f"{'/'.join(str(x) for x in m['load_average_after'])} after",
    ]


def _target_lines(report: dict[str, Any]) -> list[str]:
    lines = ["targets"]
    for name, tg in report["targets"].items():
        state = {True: "met", False: "MISSED", None: "not measured"}[tg["met"]]
        lines.append(f"  {name:<32} {str(tg['value']):>10}  {state}  ({tg['note']})")
    return lines


def format_video_table(report: dict[str, Any]) -> str:
    """The ``bench --video`` report as plain text."""
    v = report["video"]
    clip = v["clip"]
    lines = _machine_lines(report, "bench --video")
    lines.append(f"clip: {clip['size']}, {clip['fps']:g} fps, {clip['frames']} frames ({clip['seconds']:g} s, "
                 f"{clip['codec']}), {clip['photo']} at {clip['face_px']} px sliding across a plain background; "
                 f"the same frames as JPEG photos")
    lines.append(f"model: {report['inputs']['model']}; verifier: {report['inputs']['verifier'] or 'none'}")
    lines.append("")
    stages = [s for s in v["headless_paced"]["stages_ms_p50"]]
    head = f"{'run --headless':<36} {'fps':>7} {'frames':>7} {'s':>7} {'faces':>6}  " + " ".join(
        f"{s:>7}" for s in stages)
    lines += [head + "  (stage p50, ms)", "-" * len(head)]
    for key, label in (("headless_paced", "video, paced at its rate"), ("headless_fast", "video, pace=off"),
                       ("folder_paced", "photo folder, pace=on (30 fps)")):
        r = v[key]
        cells = " ".join(f"{'-' if r['stages_ms_p50'].get(s) is None else format(r['stages_ms_p50'][s], '.2f'):>7}"
                         for s in stages)
        lines.append(f"{label:<36} {r['fps']:>7.2f} {r['frames']:>7} {r['elapsed_s']:>7.2f} {r['faces']:>6}  {cells}")
    lines.append("  (read: waiting for the frame's time when paced, plus decoding it)")
    g = v["gui_paced"]
    lines.append("")
    where = "off-screen" if g["platform"] == "offscreen" else f"Qt platform {g['platform'] or 'default'}"
    lines.append(f"window ({where}, {g['window_size_px'][0]}x"
                 f"{g['window_size_px'][1]} px), video paced at its rate: {g['drawn_fps']} new frames drawn per "
                 f"second ({g['frames_drawn']} drawn of {g['frames_processed']} processed over {g['drawn_span_s']} s; "
                 f"status bar {g['status_fps']} fps at the end), dropped {g['dropped']}, capture-to-display "
                 f"latency p50 {g['latency_ms_p50']} ms")
    lines.append("")
    lines += _target_lines(report)
    return "\n".join(lines)


def format_table(report: dict[str, Any]) -> str:
    """The report as plain-text tables."""
    lines = _machine_lines(report, "bench" + (" (quick)" if report["quick"] else ""))
    rec = report["inputs"]["recording"]
    lines.append(f"recording: {rec['frames']} frames, colour {rec['color_size']}, depth {rec['depth_size']}, "
                 f"{rec['annotated_frames']} annotated ({rec['recorded_from']})")
    lines.append(f"model: {report['inputs']['model']} ({report['inputs']['model_kind']}, crop "
                 f"{report['inputs']['crop']['size_px']} px); verifier: {report['inputs']['verifier'] or 'none'}")
    lines.append("")
    head = f"{'stage':<24} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'cpu ms':>8} {'runs':>6}"
    lines += [head, "-" * len(head)]

    def row(name: str, s: dict[str, Any]) -> str:
        if not s.get("ms_p50") and s.get("available") is False:
            return f"{name:<24} {'n/a: ' + s['reason']}"
        cpu = s.get("cpu_ms_mean")
        return (f"{name:<24} {s['ms_p50']:>8.3f} {s['ms_p95']:>8.3f} {s['ms_p99']:>8.3f} {s['ms_mean']:>8.3f} "
                f"{'-' if cpu is None else f'{cpu:.3f}':>8} {s['runs']:>6}")

    for name, s in report["stages"].items():
        lines.append(row(name, s))
    lines.append("")
    lines.append(f"{'generator':<34} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'cpu ms':>8} {'crops/s':>9}")
    gen = report["generator"]
    for key, s in gen["runs"].items():
        lines.append(f"{'onnx ' + key:<34} {s['ms_p50']:>8.3f} {s['ms_p95']:>8.3f} {s['ms_p99']:>8.3f} "
                     f"{s.get('cpu_ms_mean', 0):>8.3f} {s['crops_per_s']:>9.0f}")
    t = gen["torch"]
    if t.get("available") is False:
        lines.append(f"{'torch eager':<34} n/a: {t['reason']}")
    else:
        for key, s in t["runs"].items():
            lines.append(f"{'torch eager ' + key.replace('default', 'default=' + str(t['threads'])):<34} {s['ms_p50']:>8.3f} "
                         f"{s['ms_p95']:>8.3f} {s['ms_p99']:>8.3f} {s.get('cpu_ms_mean', 0):>8.3f} {s['crops_per_s']:>9.0f}")
        if "max_abs_diff_vs_onnx" in t:
            lines.append(f"  torch vs onnx output: max |difference| {t['max_abs_diff_vs_onnx']:.2e} ({t['weights']} weights)")
        else:
            lines.append(f"  torch weights: {t['weights']}")
    for name, state in gen["providers"].items():
        lines.append(f"  {name}: {state}")
    lines.append("")
    p = report["pipeline"]
    lines.append("pipeline (separate process, provider " + str(p["provider"]) + ")")
    lines.append(f"  as fast as possible, threaded: {p['fps']} fps ({p['fast']['frames']} frames in "
                 f"{p['fast']['elapsed_s']:.2f} s, {p['fast']['faces']} with a face)")
    th = p["fast"]["thread_cpu_ms_per_frame"]
    lines.append(f"    CPU per frame {p['fast']['cpu_ms_per_frame']} ms"
                 + (" (" + ", ".join(f"{k.removeprefix('facedepth-')} thread {v}" for k, v in th.items()) + ")"
                    if th else ""))
    lines.append(f"  as fast as possible, one thread (step): {p['sync']['fps']} fps, CPU per frame "
                 f"{p['sync']['cpu_ms_per_frame']} ms")
    pc = p["paced"]
    lines.append(f"  30 fps, as a sensor delivers: latency p50/p95/p99 {pc.get('latency_ms_p50', 0):.1f} / "
                 f"{pc.get('latency_ms_p95', 0):.1f} / {pc.get('latency_ms_p99', 0):.1f} ms, dropped {pc['dropped']} of "
                 f"{pc['frames_total']}")
    for stage, s in p["fast"]["stages"].items():
        if "ms_p50" in s:
            lines.append(f"    in the pipeline {stage:<8} p50 {s['ms_p50']:.2f} ms, p99 {s['ms_p99']:.2f} ms")
    mem = report["memory"]
    lines.append(f"memory: peak {mem['peak_mb']} MB (pipeline process), growth after warm-up {mem['rss_growth_mb']} MB"
                 + (f", soak {mem['soak_frames']} frames: {mem['soak_growth_mb']} MB" if mem.get("soak_frames") else ""))
    lines.append("")
    lines += _target_lines(report)
    return "\n".join(lines)
