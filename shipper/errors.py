"""The one error hierarchy of the project.

Every error the shipper raises on purpose derives from :class:`ShipperError`, so the CLI can
turn any of them into one clear line and a non-zero exit without catching unrelated bugs.
"""

from __future__ import annotations


class ShipperError(Exception):
    """Base class of every deliberate error; ``str(err)`` is a one-line, user-facing message."""

    exit_code = 1


class ConfigError(ShipperError):
    """The configuration is invalid. ``path`` names the offending key, e.g. ``output.elasticsearch.hosts``."""

    exit_code = 2

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)
