"""A pre-fork supervisor: N worker processes sharing one port through SO_REUSEPORT.

The parent builds the policy, reserves the port (a bound, non-listening
SO_REUSEPORT socket, so ``:0`` works and a busy port fails before any fork), forks
the workers and then only waits for signals and children:

* SIGTERM / SIGINT: forwarded as SIGTERM; workers drain and exit; stragglers are
  killed after the grace time;
* SIGHUP: forwarded, so each worker reloads its policy;
* a worker that dies is restarted (at most once a second per slot).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable

log = logging.getLogger("apishield.workers")

_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}
_RESTART_INTERVAL = 1.0
_KILL_SLACK = 5.0


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound SO_REUSEPORT socket holding ``host:port`` for the workers; keep it open."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def supervise(count: int, run_worker: Callable[[], None], *, grace: float) -> None:
    """Run ``run_worker`` in ``count`` forked processes until SIGTERM/SIGINT; blocking.

    What the parent built before (the compiled engine, imported modules) is moved out
    of the garbage collector's reach first (``gc.freeze``): no worker's collection
    walks it again, or writes to its pages and so copies them out of the shared memory.
    """
    gc.freeze()
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    slots: dict[int, int] = {}  # pid -> slot
    restart_at: dict[int, float] = {slot: 0.0 for slot in range(count)}
    kill_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            for slot in [s for s, at in restart_at.items() if at <= now and kill_at is None]:
                del restart_at[slot]
                slots[_spawn(run_worker)] = slot
            received = signal.sigtimedwait(_SIGNALS, 0.5)
            signum = received.si_signo if received is not None else None
            if signum in (signal.SIGTERM, signal.SIGINT) and kill_at is None:
                kill_at = time.monotonic() + grace + _KILL_SLACK
                _signal_all(slots, signal.SIGTERM)
            elif signum == signal.SIGHUP:
                _signal_all(slots, signal.SIGHUP)
            _reap(slots, restart_at, stopping=kill_at is not None)
            if kill_at is not None and not slots:
                return
            if kill_at is not None and time.monotonic() > kill_at:
                _signal_all(slots, signal.SIGKILL)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


def _spawn(run_worker: Callable[[], None]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        run_worker()
        code = 0
    except BaseException:
        log.exception("worker %d failed", os.getpid())
    finally:
        os._exit(code)


def _signal_all(slots: dict[int, int], signum: signal.Signals) -> None:
    for pid in slots:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _reap(slots: dict[int, int], restart_at: dict[int, float], *, stopping: bool) -> None:
    while slots:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        slot = slots.pop(pid, None)
        if slot is None or stopping:
            continue
        log.warning("worker %d exited (status %d); restarting it", pid, status)
        restart_at[slot] = time.monotonic() + _RESTART_INTERVAL
