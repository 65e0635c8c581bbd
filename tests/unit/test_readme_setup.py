"""README's system packages for the GUI cover every X11 library PyQt5's xcb plugin loads.

On Debian without ``libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0`` the window aborts
(exit 134); the README lists the packages. This test asks the dynamic loader (``ldd``) which
X libraries the plugin in this environment needs and checks that each one's Debian package
(named from the library as Debian names it: ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``) is in
the README's ``apt-get install`` line.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _debian_package(soname: str) -> str:
    """Debian's name for the package of a shared library: ``libfoo-bar.so.4`` -> ``libfoo-bar4``,
    a name ending in a digit gets a dash (``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0``)."""
    name, _, version = soname.partition(".so.")
    name = name.lower()
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def _readme_apt_packages() -> set[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"sudo apt-get install (libxcb1 .*?)\n```", text, re.S)
    assert block, "README lacks the apt-get line for the GUI's system packages"
    return set(block.group(1).replace("\\", " ").split())


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None, reason="Linux, ldd")
def test_readme_lists_every_x11_library_the_xcb_plugin_loads():
    import PyQt5

    plugin = Path(PyQt5.__file__).parent / "Qt5" / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        pytest.skip("this PyQt5 has no bundled xcb plugin")
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30).stdout
    sonames = {line.split()[0] for line in out.splitlines() if "=>" in line}
    x11 = {s for s in sonames if re.match(r"lib(xcb|X11|Xext|xkbcommon|GL\.)", s)}
    assert {"libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-xinerama.so.0"} <= x11, sorted(x11)
    listed = _readme_apt_packages()
    missing = sorted(s for s in x11 if _debian_package(s) not in listed)
    assert not missing, f"README's apt-get line lacks the packages of {missing}"
