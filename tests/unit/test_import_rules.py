"""The import rules: sensors is the bottom layer, only app touches Qt, the live path never loads torch.

Checked twice: statically by import-linter (contracts in pyproject.toml) and here at run time,
importing every live module in a fresh interpreter and looking at what it loaded.
"""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]

# models modules on the live path (the app loads them); everything else in models is offline
LIVE_MODELS = ("models.generator.runtime", "models.metrics", "models.verifier.runtime", "models.encoding",
               "models.refiner.runtime", "models.common.runtime", "models.common.errors")


def _modules(package: str) -> list[str]:
    path = ROOT / package
    names = [package]
    for info in pkgutil.walk_packages([str(path)], prefix=package + "."):
        names.append(info.name)
    return names


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_sensors_import_nothing_else_from_the_project_nor_qt_nor_torch():
    loaded = _loaded_after_import(_modules("sensors"))
    assert not loaded & {"models", "app", "torch", "PyQt5", "pyqtgraph"}


def test_live_path_never_loads_torch():
    live = _modules("app") + [m for m in LIVE_MODELS if (ROOT / (m.replace(".", "/") + ".py")).exists()]
    loaded = _loaded_after_import(live)
    assert "torch" not in loaded


def test_the_controller_loads_neither_qt_nor_torch():
    loaded = _loaded_after_import(["app.controller", "app.session", "app.ply"])
    assert not loaded & {"PyQt5", "pyqtgraph", "torch"}


def test_models_never_load_qt():
    models = [m for m in _modules("models") if not m.endswith("__main__")]
    loaded = _loaded_after_import(models)
    assert not loaded & {"PyQt5", "pyqtgraph", "app"}


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        raise AssertionError("lint-imports is missing: requirements.txt installs import-linter")
    out = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
