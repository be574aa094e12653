"""The lock on a run folder while a process writes in it: an OS file lock, released by the
kernel if the process dies, holding the writer's PID for the message a second writer gets."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import AelabError, opt

LOCK_NAME = ".aelab.lock"


class RunLock:
    """An OS file lock on a run folder while a process writes in it (released if the process
    dies); a second writer gets a one-line error naming the holder's PID."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AelabError(
                f"run folder {self.path.parent} is in use: process {holder} is training there; "
                f"wait for it or choose another {opt('out')}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def holder(self) -> str | None:
        """The PID of the process training in the folder now, or None (no lock, or a stale one)."""
        try:
            import fcntl

            fd = os.open(self.path, os.O_RDONLY)
        except (ImportError, OSError):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def refuse_if_held(self) -> None:
        """The one-line error a second writer gets, before it writes anything."""
        if self.path.is_file():
            with self:
                pass

    def __exit__(self, *exc) -> bool:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:  # the folder was replaced (--overwrite) with the lock in it
                pass
            os.close(self.fd)  # closing releases the lock
            self.fd = None
        return False
