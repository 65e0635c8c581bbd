#!/usr/bin/env python3
"""facedepth: the single entry point. ``python launch.py`` alone means ``run`` with defaults.

The commands, their options and the exit codes are in ``app/cli``.
"""
from __future__ import annotations

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
