"""Atomic file writes: a reader (or a crash) never sees a half-written file.

A write goes to a temporary file beside its target, ``.NAME.i2i-OWNER-PID-XXXX.tmp``, which is then
renamed onto the target. OWNER identifies this machine and process namespace (a hash of the host
name, boot id and PID namespace) and PID the writing process, so :func:`remove_stale_temps` can tell
the temp file of a killed writer (``kill -9``, power loss) from one that a live writer on this or
another machine sharing the folder is still writing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

# a temp file whose writer cannot be identified as dead is removed only once it is this old
# (seconds since its last change): no writer leaves its temp file untouched for a day
STALE_AGE_S = 24 * 3600
_TEMP = re.compile(r"^\..+\.i2i-(?P<owner>[0-9a-f]{12})-(?P<pid>\d+)-[^.]*\.tmp$")
_OLD_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # tempfile.mkstemp's names, as older i2i wrote them


@functools.lru_cache(maxsize=1)
def _owner() -> str:
    """12 hex digits naming this machine, boot and PID namespace: PIDs are only comparable within it."""
    parts = [socket.gethostname()]
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(Path(source).read_text().strip() if "boot_id" in source else str(os.stat(source).st_ino))
        except OSError:
            parts.append("")
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:12]


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, fsync, then rename onto ``path``; on any error the temp file is removed.

    The temp file lies beside ``path`` and is named ``.NAME.i2i-OWNER-PID-XXXX.tmp`` (NAME cut to
    100 bytes), so a later :func:`remove_stale_temps` can clear it if this process is killed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(path.parent)
    tmp = temp_beside(path)
    try:
        write(tmp)
        # mkstemp makes 0600; give the file the usual permissions (after writing: some writers, such
        # as safetensors, replace the file they are given)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def temp_beside(path: Path) -> str:
    """A new empty file beside ``path`` named ``.NAME.i2i-OWNER-PID-XXXX.tmp`` (NAME cut to 100
    bytes), the name :func:`remove_stale_temps` clears once this process is gone. The caller
    removes it."""
    name = path.name.encode("utf-8", "surrogateescape")[:100].decode("utf-8", "surrogateescape")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.i2i-{_owner()}-{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return tmp


_cleaned: set[str] = set()
_cleaned_lock = threading.Lock()


def _clean_once(folder: Path) -> None:
    """The first write of this process into ``folder`` removes the temp files that killed writers
    left there (:func:`remove_stale_temps`), so every command that writes cleans up after a killed
    one, at one directory listing per folder."""
    key = os.path.abspath(folder)
    with _cleaned_lock:
        if key in _cleaned:
            return
        _cleaned.add(key)
    try:
        remove_stale_temps(folder)  # logs what it removed
    except OSError:
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process we can ask about: keep its file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process (or a PID this system cannot hold): assume it writes
    return True


def remove_stale_temps(folder: str | Path, recursive: bool = False) -> int:
    """Remove the temp files that dead writers of :func:`atomic_write` left in ``folder`` (and its
    subfolders with ``recursive``); returns how many were removed.

    A temp file is stale when its writer ran on this machine (same host, boot and PID namespace) and
    its process is gone, or when it has not changed for :data:`STALE_AGE_S` seconds (writers on other
    machines, and temp files of older i2i versions, whose names do not say who wrote them). The temp
    file of a live writer, here or on another machine sharing the folder, is never removed. Only
    hidden ``.tmp`` files named as :func:`atomic_write` names them (or as ``tempfile.mkstemp`` did for
    older i2i versions, ``.NAME.XXXXXXXX.tmp``) are candidates; other files, symlinks and folders are
    left alone, and a missing folder gives 0. A file that cannot be removed is logged and skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed, now, owner = 0, time.time(), _owner()
    candidates = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    for path in candidates:
        match = _TEMP.match(path.name)
        if match is None and not _OLD_TEMP.match(path.name):
            continue
        try:
            st = path.lstat()
            if not path.is_file() or path.is_symlink():
                continue
            dead = match is not None and match["owner"] == owner and not _pid_alive(int(match["pid"]))
            if not dead and now - st.st_mtime < STALE_AGE_S:
                continue
            path.unlink()
        except FileNotFoundError:  # another process removed it first, or its writer renamed it
            continue
        except OSError as e:
            log.warning("%s: stale temp file not removed (%s)", path, e.strerror or e)
            continue
        removed += 1
        log.debug("removed %s, left by a writer that was killed", path)
    if removed:
        log.info("%s: removed %d temp file(s) left by killed writers", folder, removed)
    return removed
