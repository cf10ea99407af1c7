"""Reading nested ECS documents in tests."""

from __future__ import annotations

import json
from typing import Any


def get(doc: dict[str, Any], dotted: str) -> Any:
    """``get(doc, "celery.task.id")``: the value at a dotted path of nested objects, or None."""
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def strict_loads(line: str) -> Any:
    """``json.loads`` that fails the test on a bare NaN/Infinity or a duplicate key."""

    def no_constant(name: str) -> Any:
        raise AssertionError(f"bare {name} in {line[:200]}")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys {keys}"
        return dict(pairs)

    return json.loads(line, parse_constant=no_constant, object_pairs_hook=no_duplicates)
