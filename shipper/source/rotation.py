"""Where a file's content went: its other names after rotation.

Rotation leaves content next to where it was: ``app.log.1``, ``app.log-20261124``,
``app-20261124.log``, ``app.log.2.gz``. For a path that is a symlink, rotation happens next to the
*target*, so both directories are looked at, and their subdirectories (logrotate's ``olddir``,
when it is a subdirectory: ``old/app.log.1.gz``). These functions only list and stat candidates; whether
a candidate holds the content in question is for the caller to check (by inode, head and the bytes
before the position).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Callable, Iterable, Sequence

from ..config import InputConfig
from .discovery import excluded
from .fingerprint import birth_time_ns

#: Subdirectories of a log's directory looked into for its rotated files (``olddir``), at most.
MAX_OLDDIRS = 64


def resolved(path: str) -> str | None:
    """The real path of a symlinked ``path``; None if ``path`` is not a symlink."""
    try:
        if not os.path.islink(path):
            return None
        return os.path.realpath(path)
    except OSError:
        return None


def _regular(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _places(paths: Iterable[str | None]) -> list[tuple[str, str]]:
    """``(directory, stem)`` pairs: ``/var/log/app.log`` -> ``("/var/log", "app")``, and the same
    stem in each subdirectory (logrotate's ``olddir old`` moves rotated files there)."""
    out: list[tuple[str, str]] = []
    for path in paths:
        if not path:
            continue
        directory, base = os.path.split(path)
        stem = base.rsplit(".", 1)[0] if "." in base else base
        for place in [(directory or ".", stem), *((sub, stem) for sub in _subdirectories(directory or "."))]:
            if place not in out:
                out.append(place)
    return out


def _subdirectories(directory: str) -> list[str]:
    """Real subdirectories of ``directory`` (not symlinks), at most MAX_OLDDIRS, by name."""
    try:
        with os.scandir(directory) as entries:
            subs = sorted(e.path for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []
    return subs[:MAX_OLDDIRS]


def named_like_rotation_of(path: str, original: str | None) -> bool:
    """Is ``path``'s name what rotating ``original`` produces (``app.log.1``, ``app.log.2.gz``,
    ``app.log-20261124``, ``app-20261124.log``, or the same name elsewhere, as logrotate's
    ``olddir`` does)? Only such a file can be a copy of ``original``'s content: two files that
    merely start alike are two files."""
    if not original:
        return False
    name, orig = os.path.basename(path), os.path.basename(original)
    if name.startswith(orig):
        return True
    stem = orig.rsplit(".", 1)[0] if "." in orig else orig
    return any(name.startswith(stem + sep) for sep in ".-_")


def siblings(path: str, real_path: str | None = None) -> list[tuple[str, os.stat_result]]:
    """Regular files next to ``path`` (and to its symlink target) named like its rotations,
    ``path`` itself included."""
    out: list[tuple[str, os.stat_result]] = []
    seen: set[tuple[int, int]] = set()
    for directory, stem in _places((path, real_path)):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if not name.startswith(stem):
                continue
            full = os.path.join(directory, name)
            st = _regular(full)
            if st is not None and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                out.append((full, st))
    return out


def find_inode(
    path: str, real_path: str | None, dev: int, ino: int, birth: int = 0
) -> tuple[str, os.stat_result] | None:
    """The file with inode ``(dev, ino)`` among ``path``'s rotation siblings (a rename keeps it),
    born at ``birth`` where that is known: an inode number freed and handed to another file
    (``app.log.1`` compressed to ``app.log.1.gz``) is not the file looked for."""
    for directory, stem in _places((path, real_path)):
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if entry.inode() != ino or not entry.name.startswith(stem):
                continue
            st = _regular(entry.path)
            if st is None or (st.st_dev, st.st_ino) != (dev, ino):
                continue
            if birth:
                born = birth_time_ns(entry.path)
                if born and born != birth:
                    continue
            return entry.path, st
    return None


def rotated_names(
    inp: InputConfig, live_targets: Sequence[str] = (), known: Callable[[str], bool] = os.path.lexists
) -> list[tuple[str, os.stat_result]]:
    """Files named like rotations of the input's files (``PATTERN.*``, ``PATTERN-*``, the same
    in subdirectories (``olddir``) and next to the targets of symlinked live paths), whose base
    name is not excluded. In a subdirectory, only rotations of a file ``known`` (there, or
    followed before) in the directory above count: ``old/`` may hold anything else."""
    found: list[tuple[str, os.stat_result]] = []
    patterns = [os.path.expanduser(p) for p in inp.paths]
    patterns.extend(live_targets)
    for pattern in patterns:
        literal = pattern in live_targets
        base_pattern = os.path.basename(pattern)

        def is_base(name: str, base_pattern: str = base_pattern, literal: bool = literal) -> bool:
            return name == base_pattern if literal else fnmatch.fnmatch(name, base_pattern)

        where = glob.escape(pattern) if literal else pattern
        in_olddir = os.path.join(os.path.dirname(where), "*", os.path.basename(where))
        for suffix in (".*", "-*"):
            next_to = [(full, False) for full in glob.glob(where + suffix)]
            for full, olddir in [*next_to, *((full, True) for full in glob.glob(in_olddir + suffix))]:
                name = os.path.basename(full)
                # In a subdirectory, only the rotations of a file that is in the directory above.
                parent = os.path.dirname(os.path.dirname(full)) if olddir else None
                base = next(
                    (
                        name[:i]
                        for i in range(len(name), 0, -1)
                        if name[i : i + 1] in (".", "-")
                        and is_base(name[:i])
                        and (parent is None or known(os.path.join(parent, name[:i])))
                    ),
                    None,
                )
                if base is None or excluded(inp, os.path.join(os.path.dirname(full), base)):
                    continue
                st = _regular(full)
                if st is not None:
                    found.append((full, st))
    return found


def name_stems(name: str) -> list[str]:
    """``app.log.2.gz`` -> the name and each shorter name it is a rotation of: ``app.log.2``,
    ``app.log``, ``app`` (cut at dots and dashes)."""
    out = [name]
    for i in range(len(name) - 1, 0, -1):
        if name[i] in ".-":
            out.append(name[:i])
    return out
