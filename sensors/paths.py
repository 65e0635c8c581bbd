"""Where the project keeps its per-user files (recordings, snapshots, enrolments)."""
from __future__ import annotations

import os
import time
from pathlib import Path


def data_dir() -> Path:
    """The project's per-user data folder: ``$FACEDEPTH_DATA_DIR``, else
    ``$XDG_DATA_HOME/facedepth``, else ``~/.local/share/facedepth``."""
    if os.environ.get("FACEDEPTH_DATA_DIR"):
        return Path(os.environ["FACEDEPTH_DATA_DIR"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "facedepth"


def default_recording_path(folder: str | os.PathLike[str] | None = None) -> Path:
    """A new, timestamped recording file name in ``folder`` (default ``data_dir()/recordings``)."""
    folder = Path(folder) if folder else data_dir() / "recordings"
    return folder / time.strftime("facedepth_%Y%m%d_%H%M%S.mcap")
