"""The run journal: one SQLite file per run, one transaction per training sample."""

from aeqlab.journal.codec import pack, unpack, utc_now  # noqa: F401
from aeqlab.journal.database import Header, Journal, StoredCheckpoint, tracked_indices  # noqa: F401
from aeqlab.journal.schema import FILE, FORMAT  # noqa: F401
