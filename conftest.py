"""Doctest collection of the package (``--doctest-modules``): modules whose optional extra is missing are left out.

The README's test command runs every docstring example in ``pii_frames`` beside ``tests/``. Adapters for
Airflow, dbt, Ray and Spark import their framework at module level, so without that extra installed their
examples cannot run; the tests of those extras skip with a reason in the same case.
"""

from importlib.util import find_spec

_EXTRA_OF = {
    "pii_frames/airflow/*.py": "airflow",
    "pii_frames/dbt/*.py": "dbt.adapters.duckdb",
    "pii_frames/ray.py": "ray",
    "pii_frames/ray/*.py": "ray",
    "pii_frames/spark.py": "pyspark",
    "pii_frames/spark/*.py": "pyspark",
}


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


collect_ignore_glob = [pattern for pattern, module in _EXTRA_OF.items() if not _installed(module)]
