"""Reading and writing tables: one module for the CLI, the Airflow job and anything else that writes outputs.

- :mod:`pii_frames.io.files`: Parquet/CSV/JSON Lines readers that stream
  bounded batches (:class:`~pii_frames.io.files.FileSource`) and the atomic
  file writer (:class:`~pii_frames.io.files.FileSink`);
- :mod:`pii_frames.io.locations`: Parquet folders and DuckDB tables as job
  sources/destinations, planned in chunks;
- :mod:`pii_frames.io.sql`: SQL tables (Airflow Connection or SQLAlchemy URL)
  as job sources/destinations: key-range chunks, one-transaction swap;
- :mod:`pii_frames.io.atomic`: atomic file/folder/symlink replacement,
  temporary names that record their process, and the sweep of dead runs'
  leftovers; SIGTERM/SIGHUP turned into a cleanup;
- :mod:`pii_frames.io.paths`: "same file?" and "inside that folder?" through
  ``..``, symlinks and hard links, and DuckDB's identifier folding;
- :mod:`pii_frames.io.text`: cells that are not valid UTF-8, named by column
  and row, raised or nulled;
- :mod:`pii_frames.io.memory`: giving freed memory back to the OS between batches.

The submodules import pyarrow; importing this package alone does not.

>>> from pii_frames.io.paths import same_location
>>> same_location("/tmp/x/../y", "/tmp/y")
True
"""
