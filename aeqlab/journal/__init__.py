"""The run journal: one SQLite file per run, one transaction per training sample."""

from aeqlab.journal.core import (  # noqa: F401
    FILE,
    Header,
    Journal,
    pack,
    pack_checkpoint,
    tracked_indices,
    unpack,
    unpack_checkpoint,
    utc_now,
)
