"""What the inputs' globs match now, and how that differs from the last look.

The periodic listing is the source of truth (inotify events only make it happen sooner: events are
lost on overflow and never arrive on NFS). :func:`list_files` is the only I/O here; :func:`diff`
is a pure function from two listings to the changes, so the tailer only ever looks closer at files
that were created, grew, shrank, were touched, moved or went away.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
import re
import stat
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..config import InputConfig

Ident = tuple[int, int]  # (st_dev, st_ino)


class Seen(NamedTuple):
    """One regular file matched by an input's globs (``path`` may be a symlink to it)."""

    path: str
    input_index: int
    dev: int
    ino: int
    size: int
    mtime_ns: int

    @property
    def ident(self) -> Ident:
        return (self.dev, self.ino)


class Change(NamedTuple):
    """A file whose listing differs between two looks; ``before``/``after`` is None if absent."""

    ident: Ident
    before: Seen | None
    after: Seen | None

    @property
    def created(self) -> bool:
        return self.before is None

    @property
    def gone(self) -> bool:
        return self.after is None

    @property
    def grew(self) -> bool:
        return self.before is not None and self.after is not None and self.after.size > self.before.size

    @property
    def shrank(self) -> bool:
        return self.before is not None and self.after is not None and self.after.size < self.before.size


@functools.lru_cache(maxsize=64)
def _exclusion(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One compiled regex for an input's exclude patterns (fnmatch per path and pattern was the
    largest cost of a scan of thousands of files)."""
    if not patterns:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns))


def excluded(inp: InputConfig, path: str) -> bool:
    """Does one of the input's ``exclude`` patterns match the file's name or its whole path?"""
    rx = _exclusion(inp.exclude)
    return rx is not None and (rx.match(os.path.basename(path)) is not None or rx.match(path) is not None)


def _excluded_cached(inp: InputConfig, path: str, cache: dict[tuple[str, str], bool]) -> bool:
    key = (inp.id, path)
    hit = cache.get(key)
    if hit is None:
        if len(cache) > 100_000:  # bounded: paths with dates in their names never repeat
            cache.clear()
        hit = cache[key] = excluded(inp, path)
    return hit


def list_files(
    inputs: Sequence[InputConfig],
    link_targets: dict[str, str] | None = None,
    exclusions: dict[tuple[str, str], bool] | None = None,
) -> dict[Ident, Seen]:
    """Every regular file the inputs' globs match; a file matched twice counts once (first wins).

    Matched symlinks, dangling ones included, go into ``link_targets`` (path -> resolved path):
    their target may have been rotated away, and its rotated names are next to the target.
    ``exclusions`` remembers which paths the exclude patterns matched, from one scan to the next."""
    found: dict[Ident, Seen] = {}
    for index, inp in enumerate(inputs):
        for pattern in inp.paths:
            for path in sorted(glob.glob(os.path.expanduser(pattern))):
                skip = excluded(inp, path) if exclusions is None else _excluded_cached(inp, path, exclusions)
                if skip:
                    continue
                try:
                    st = os.lstat(path)  # one system call for what is not a symlink
                    if stat.S_ISLNK(st.st_mode):
                        if link_targets is not None:
                            link_targets[path] = os.path.realpath(path)
                        st = os.stat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                ident = (st.st_dev, st.st_ino)
                if ident not in found:
                    found[ident] = Seen(path, index, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    return found


def diff(before: Mapping[Ident, Seen], after: Mapping[Ident, Seen]) -> list[Change]:
    """The files that appeared, went away, or changed path, size or modification time."""
    changes = [
        Change(ident, before.get(ident), seen) for ident, seen in after.items() if before.get(ident) != seen
    ]
    changes.extend(Change(ident, seen, None) for ident, seen in before.items() if ident not in after)
    return changes


def watched_dirs(inputs: Sequence[InputConfig]) -> set[str]:
    """The directories named by the inputs' patterns (the part before the first wildcard)."""
    dirs: set[str] = set()
    for inp in inputs:
        for pattern in inp.paths:
            pattern = os.path.expanduser(pattern)
            static = pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
            base = os.path.dirname(static) if not static.endswith("/") else static.rstrip("/")
            dirs.add(base or ".")
    return dirs
