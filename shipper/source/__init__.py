"""Following log files: identity, rotation, multi-line records, acknowledged checkpoints."""

from .acks import AckTracker
from .checkpoint import CheckpointStore, FileState, locked
from .records import NO_NEWLINE, TRUNCATED, Batch, Record, SourceRef, record_id
from .tailer import FileStatus, Tailer, TailerStats

__all__ = [
    "NO_NEWLINE",
    "TRUNCATED",
    "AckTracker",
    "Batch",
    "CheckpointStore",
    "FileState",
    "FileStatus",
    "Record",
    "SourceRef",
    "Tailer",
    "TailerStats",
    "locked",
    "record_id",
]
