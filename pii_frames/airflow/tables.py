"""Moved to :mod:`pii_frames.io.locations` (one I/O module for the CLI and the job); re-exported here.

>>> from pii_frames.airflow.tables import parse_location
>>> parse_location("duckdb:///tmp/w.db::t").schema
'main'
"""

from pii_frames.io.locations import *  # noqa: F401,F403
from pii_frames.io.locations import __all__  # noqa: F401
