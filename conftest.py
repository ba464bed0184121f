"""Doctest collection of the package (``--doctest-modules``): modules whose optional extra is missing are left out.

The README's test command runs every docstring example in ``pii_frames`` beside ``tests/``. Adapters for
Airflow, dbt, Ray and Spark import their framework at module level, so without that extra installed their
examples cannot run; the tests of those extras skip with a reason in the same case.
"""

import logging
import signal
import sys
from importlib.util import find_spec

import pytest
from _pytest.doctest import DoctestItem

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


# py4j logs at INFO from its finalizers at interpreter exit, after pytest closed the streams: noise.
logging.getLogger("py4j").setLevel(logging.WARNING)

collect_ignore_glob = [pattern for pattern, module in _EXTRA_OF.items() if not _installed(module)]


# The Ray and Spark adapters' examples run on a local Ray / Spark started here, once, for those modules only.
_CLUSTER_EXAMPLES = {"ray.py": "_local_ray", "spark.py": "_local_spark"}


@pytest.fixture(scope="session")
def _local_ray():
    import ray

    sigterm_before = signal.getsignal(signal.SIGTERM)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            yield {}
        finally:
            ray.shutdown()
            # ray.init's SIGTERM handler outlives shutdown and would kill the suite on a later SIGTERM.
            signal.signal(signal.SIGTERM, sigterm_before)


@pytest.fixture(scope="session")
def _local_spark():
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as patch:
        # The JVM starts with this environment and hands it to the Python workers it forks.
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        session = (
            SparkSession.builder.master("local[1]")
            .appName("pii_frames-examples")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        try:
            yield {"spark": session}
        finally:
            session.stop()


@pytest.fixture(autouse=True)
def _cluster_for_examples(request, doctest_namespace):
    """Give the examples of pii_frames/ray.py and pii_frames/spark.py a running local cluster (``spark`` by name)."""
    path = getattr(request.node, "path", None)
    if not isinstance(request.node, DoctestItem) or path is None or path.parent.name != "pii_frames":
        return
    fixture = _CLUSTER_EXAMPLES.get(path.name)
    if fixture is not None:
        doctest_namespace.update(request.getfixturevalue(fixture))
