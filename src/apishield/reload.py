"""Hot reload: a holder whose engine is swapped atomically when the policy file changes."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from apishield.engine import Engine
from apishield.errors import PolicyError
from apishield.policy import Policy, load_policy

log = logging.getLogger("apishield.reload")


class PolicyHolder:
    """Holds the current :class:`Engine`; adapters read ``holder.engine`` per request.

    A reload builds a complete new engine first and only then swaps the reference,
    so a request sees either the old policy or the new one, never a mix; what the old
    engine learned of parameter kinds carries over. An invalid file keeps the last
    good engine and the error is returned and logged.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        policy: Policy | None = None,
        engine_factory: Callable[[Policy], Engine] = Engine,
    ) -> None:
        if path is None and policy is None:
            raise ValueError("PolicyHolder needs a policy file or a policy")
        self.path = Path(path) if path is not None else None
        self._factory = engine_factory
        self.engine: Engine = engine_factory(policy if policy is not None else self._load())
        self._stamp = self._file_stamp()

    def _load(self) -> Policy:
        assert self.path is not None
        return load_policy(self.path)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def reload(self) -> PolicyError | None:
        """Reload the file now; return the error if the new policy was refused."""
        if self.path is None:
            return None
        self._stamp = self._file_stamp()
        try:
            engine = self._factory(self._load())
        except PolicyError as exc:
            log.error("policy reload refused, keeping the last good policy: %s", exc)
            return exc
        engine.adopt_learning(self.engine)
        self.engine = engine
        log.info("policy reloaded from %s", self.path)
        return None

    def reload_if_changed(self) -> PolicyError | None:
        """Reload when the file's mtime, size or inode changed since the last load."""
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return None
        return self.reload()
