"""Atomic, change-only file writes and a lock for sheets edited by several people.

Every output and sheet is replaced whole: the new content goes to a temporary file in the same
folder, is flushed to disk, and is renamed over the old file (``os.replace`` is atomic on POSIX),
so a reader or a crash sees the old or the new version, never a mix. A write whose content equals
the file's current content does nothing, so a run with nothing changed rewrites nothing. A replaced
file keeps its permissions; a new one gets the usual ones (0o666 less the umask), not mkstemp's 0o600.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from pathlib import Path


def write_if_changed(path: Path, content: bytes | str) -> bool:
    """Atomically replace ``path`` with ``content`` unless it already holds it; True if written."""
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), _mode_for(path))
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return True


def _mode_for(path: Path) -> int:
    """The permissions of ``path`` if it exists, else those a new file gets under the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on ``path`` (via ``path.lock``) for the duration of the block."""
    lock_path = Path(f"{path}.lock")
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
