"""Reading nested ECS documents in tests."""

from __future__ import annotations

from typing import Any


def get(doc: dict[str, Any], dotted: str) -> Any:
    """``get(doc, "celery.task.id")``: the value at a dotted path of nested objects, or None."""
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
