"""Stopping a command cleanly on SIGINT (Ctrl-C) or SIGTERM (``kill``, a service manager).

Both signals take the same path: by default the handler raises ``KeyboardInterrupt`` where the
main thread is (so blocking reads stop at once and the existing ``except KeyboardInterrupt``
clean-ups run); inside :func:`deferred` it only records the request, for loops that stop at a
safe point (between frames, between training steps, in the GUI's event loop). The signal that
came decides the exit code: 128 + its number (130 for SIGINT, 143 for SIGTERM).

Qt-free and torch-free: the CLI entry point installs the handlers around every command.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: the signals that stop a command, and how they are named in messages and reports
STOP_SIGNALS: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


#: inside deferred(), a signal this soon after the first is the same request, not a second one
#: (Ctrl-C reaches every process of the terminal's group, and torchrun then sends its workers
#: SIGTERM as well)
SAME_REQUEST_S = 1.0


class _State:
    received: int | None = None  # the first stop signal since install(), None: none came
    received_at: float = 0.0  # time.monotonic() of the first
    deferring: int = 0  # nesting depth of deferred()
    polling: bool = False  # poll() was called: signals only set the request until installed() ends
    second_raises: bool = True  # inside deferred(): a second signal raises KeyboardInterrupt


class Stopped(KeyboardInterrupt):
    """The ``KeyboardInterrupt`` a stop signal raises; ``signo`` is the first signal of the request."""

    def __init__(self, signo: int) -> None:
        super().__init__(STOP_SIGNALS.get(signo, str(signo)))
        self.signo = signo


def _handler(signo: int, _frame: Any) -> None:
    now = time.monotonic()
    if _State.received is None:
        _State.received, _State.received_at = signo, now
        first = True
    else:
        first = now - _State.received_at < SAME_REQUEST_S
    if (_State.deferring or _State.polling) and (first or not _State.second_raises):
        return  # the loop in deferred() sees requested() and stops at its next safe point
    raise Stopped(_State.received)


@contextmanager
def installed() -> Iterator[None]:
    """Handle SIGINT and SIGTERM alike while the block runs; the previous handlers come back after,
    and the request is forgotten (read :func:`exit_code` inside the block).

    A signal the process inherited as ignored stays ignored (a job started in the background by
    a non-interactive shell is not meant to see the terminal's Ctrl-C). Outside the main thread
    (handlers cannot be set there) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    _State.received, _State.polling = None, False
    try:
        for signo in STOP_SIGNALS:
            old = signal.getsignal(signo)
            if old is signal.SIG_IGN:
                continue
            previous[signo] = old
            signal.signal(signo, _handler)
        yield
    finally:
        _State.received, _State.polling = None, False  # the next command (in-process) starts afresh
        for signo, old in previous.items():
            signal.signal(signo, old if old is not None else signal.SIG_DFL)


@contextmanager
def deferred(second_raises: bool = True) -> Iterator[None]:
    """Inside the block a stop signal only sets :func:`requested`; the code polls it.

    ``second_raises``: a second signal raises ``KeyboardInterrupt`` (a clean-up that hangs can
    still be cut short); False where an exception would have nowhere to go (Qt's event loop).
    """
    saved = _State.second_raises
    _State.deferring += 1
    _State.second_raises = second_raises
    try:
        yield
    finally:
        _State.deferring -= 1
        _State.second_raises = saved


def poll() -> str | None:
    """The stop signal's name (``SIGINT``, ``SIGTERM``) once one came, else None: for a loop that
    stops at its own safe points (a training step). From the first call on, until the end of
    :func:`installed`, a signal only sets the request (as inside :func:`deferred`), so the work
    before the loop (loading data) stays interruptible at once."""
    _State.polling = True
    return signal_name() if requested() else None


def requested() -> bool:
    """Whether a stop signal came since :func:`installed` began."""
    return _State.received is not None


def _signo(exc: BaseException | None) -> int:
    if isinstance(exc, Stopped):
        return exc.signo
    # a KeyboardInterrupt raised without a signal (a test), or by Python's own handler, is Ctrl-C's
    return _State.received or signal.SIGINT


def signal_name(exc: BaseException | None = None) -> str:
    """``SIGINT`` or ``SIGTERM``: the signal of the request (of ``exc``, when it was raised by one)."""
    return STOP_SIGNALS.get(_signo(exc), "SIGINT")


def exit_code(exc: BaseException | None = None) -> int:
    """The exit code of a stopped command: 128 + the signal's number (130 SIGINT, 143 SIGTERM)."""
    return 128 + int(_signo(exc))


def by_words() -> str:
    """How the stop is told to a user: ``Ctrl-C`` or ``SIGTERM``."""
    return "Ctrl-C" if signal_name() == "SIGINT" else signal_name()


def announce(command: str, exc: BaseException | None = None) -> None:
    """The one line a stopped command leaves on stderr."""
    what = "interrupted" if signal_name(exc) == "SIGINT" else "stopped by SIGTERM"
    sys.stderr.write(f"launch.py {command}: {what}\n")
