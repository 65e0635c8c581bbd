"""``python -m app.bench``: the pipeline runs of ``launch.py bench`` in a process of their own,
so that its memory figures are the pipeline's alone; prints the figures as one JSON line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.bench.pipeline import pipeline_worker
from sensors.errors import FacedepthError


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m app.bench", description="the pipeline runs of launch.py bench")
    p.add_argument("--recording", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--verifier", default=None)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--soak", type=int, default=0)
    a = p.parse_args(argv)
    try:
        result = pipeline_worker(Path(a.recording), Path(a.model), Path(a.verifier) if a.verifier else None,
                                 a.warmup, a.max_frames, a.soak)
    except FacedepthError as exc:
        sys.stderr.write(f"bench pipeline: error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
