"""The one checkpoint format of every network's training (torch; offline only).

A checkpoint is a dict saved with ``torch.save``: whatever its training keeps (weights,
optimiser, curves, configuration), plus ``format`` (``facedepth-<kind>-checkpoint``, which names
the network) and ``version``. It is written atomically (``models.common.files.atomic_path``)
and read with ``torch.load(weights_only=True)``, so it must hold tensors and plain Python values
only: a checkpoint never runs code when loaded.

Verifier and refiner checkpoints written before they carried the tag are read too: a dict
without ``format`` (their loaders check the keys they need).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.common.errors import ModelError
from models.common.files import atomic_path
from sensors.filekind import ZIP, sniff

#: the networks that have checkpoints
KINDS = ("generator", "verifier", "refiner")
#: each network's format tag
CHECKPOINT_FORMATS = {kind: f"facedepth-{kind}-checkpoint" for kind in KINDS}
CHECKPOINT_VERSION = 1
#: kinds whose checkpoints once had no tag
_UNTAGGED_KINDS = ("verifier", "refiner")


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str], kind: str) -> None:
    """Write ``state`` tagged as a ``kind`` checkpoint to ``path``; an interrupted save leaves
    the previous file, never a truncated one."""
    import torch

    if kind not in KINDS:
        raise ValueError(f"unknown network kind {kind!r}; expected one of {', '.join(KINDS)}")
    tagged = {"format": CHECKPOINT_FORMATS[kind], "version": CHECKPOINT_VERSION,
              **{k: v for k, v in state.items() if k not in ("format", "version")}}
    with atomic_path(path) as tmp:
        torch.save(tagged, tmp)


def load_checkpoint(path: str | os.PathLike[str], kind: str, missing_hint: str = "") -> dict[str, Any]:
    """The ``kind`` checkpoint at ``path``, on the CPU. ModelError (one line, naming the file) for
    a missing or unreadable file and for another network's or another version's checkpoint;
    ``missing_hint`` follows "checkpoint does not exist" in brackets (how to make one)."""
    import torch

    if kind not in KINDS:
        raise ValueError(f"unknown network kind {kind!r}; expected one of {', '.join(KINDS)}")
    path = Path(path)
    if not path.is_file():
        raise ModelError("checkpoint does not exist" + (f" ({missing_hint})" if missing_hint else ""), path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file; name the file, one line
        what = sniff(path)  # a photo or a dataset given as a checkpoint: say so
        why = f"it is {what}" if what and what != ZIP else type(exc).__name__
        raise ModelError(f"not a readable PyTorch checkpoint ({why})", path) from None
    if not isinstance(state, dict):
        raise ModelError(f"not a {kind} checkpoint", path)
    tag = state.get("format")
    if tag is None and kind in _UNTAGGED_KINDS:
        return state
    if tag != CHECKPOINT_FORMATS[kind]:
        other = next((k for k, t in CHECKPOINT_FORMATS.items() if t == tag), None)
        raise ModelError(f"not a {kind} checkpoint" + (f" (it is a {other} checkpoint)" if other else ""), path)
    if state.get("version") != CHECKPOINT_VERSION:
        raise ModelError(f"checkpoint version {state.get('version')} is not {CHECKPOINT_VERSION}", path)
    return state
