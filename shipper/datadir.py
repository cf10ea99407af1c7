"""The data dir: checkpoints, dead letters and the lock live here, and nobody else may write it.

The shipper trusts its data dir (what the checkpoints say decides what is read and what is
skipped), so it must be private: created 0700, refused when it is owned by another user or writable
by group or others. Files in it are opened without following symlinks (``O_NOFOLLOW``): a symlink
planted there must not make the shipper write through it (a root-run shipper would clobber the
target). A symlinked data dir *itself* is allowed (``/var/lib/shipper -> /data/shipper``); its
target is checked instead.
"""

from __future__ import annotations

import os
import stat

from .errors import ShipperError


class DataDirError(ShipperError):
    """The data dir or a file in it is unsafe or unusable."""


def ensure_private_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` (0700) if needed; refuse it if another user owns it or others can write it."""
    directory = os.fspath(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
    except OSError as exc:
        raise DataDirError(f"data_dir {directory}: cannot create it ({exc.strerror})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DataDirError(f"data_dir {directory}: not a directory")
    euid = os.geteuid()
    if st.st_uid != euid:
        raise DataDirError(
            f"data_dir {directory}: owned by uid {st.st_uid}, not by this user (uid {euid}); "
            "chown it or choose another data_dir"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DataDirError(
            f"data_dir {directory}: writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            "chmod 700 it"
        )


def open_private(path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
    """``os.open`` of a file in the data dir, never through a symlink; created ``mode``."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if os.path.islink(path):
            raise DataDirError(f"{os.fspath(path)} is a symlink; refusing to follow it") from None
        raise DataDirError(f"cannot open {os.fspath(path)}: {exc.strerror}") from None


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content.

    The temporary file is created with ``O_EXCL | O_NOFOLLOW`` after removing any leftover (an
    ``unlink`` removes a planted symlink itself, never its target)."""
    target = os.fspath(path)
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name}.tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise DataDirError(f"cannot remove {tmp}: {exc.strerror}") from None
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    fsync_dir(directory or ".")


def fsync_dir(directory: str) -> None:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
