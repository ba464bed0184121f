"""Suite-wide settings.

Environment: the suite must pass whatever the caller's shell holds, so every
variable our code, Hugging Face, tiktoken or Airflow reads is cleared before
any test module is imported, HOME points at an empty temporary folder (no
``~/.opf`` or Hugging Face cache of the developer's leaks in), and Airflow gets
a throwaway home (SQLite) inside it. Tests that need a
variable set it themselves with ``monkeypatch`` or a subprocess ``env``.

Threads: models in tests are tiny: their matmuls run faster on one thread than
two on small CI machines, and a second thread can stall badly when another
process holds the other core. Each test process pins torch to one thread, and
every test gets it back at one thread even if an earlier test changed it.

Shared fixtures: tests whose module uses ``../shared`` (see ``shared_paths``)
are skipped with a one-line reason when that folder is absent.
"""

import os
import shutil
import tempfile

_ISOLATED_PREFIXES = ("PII_FRAMES_", "HF_", "HUGGINGFACE_", "TIKTOKEN_", "AIRFLOW_", "TRANSFORMERS_")
for _name in list(os.environ):
    if _name.startswith(_ISOLATED_PREFIXES):
        del os.environ[_name]
_HOME = tempfile.mkdtemp(prefix="pii-frames-tests-home-")
os.environ["HOME"] = _HOME
# Airflow reads its configuration once, when first imported, and collecting the package's doctests
# imports pii_frames.airflow: so the suite's throwaway Airflow home is set before anything is collected.
_AIRFLOW_HOME = os.path.join(_HOME, "airflow")
os.makedirs(os.path.join(_AIRFLOW_HOME, "dags"))
os.environ.update(
    AIRFLOW_HOME=_AIRFLOW_HOME,
    AIRFLOW__CORE__DAGS_FOLDER=os.path.join(_AIRFLOW_HOME, "dags"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{os.path.join(_AIRFLOW_HOME, 'airflow.db')}",
)

import pytest  # noqa: E402
import torch  # noqa: E402

from shared_paths import SHARED, SHARED_MISSING  # noqa: E402

torch.set_num_threads(1)

_SHARED_NAMES = ("SHARED", "OPF_TINY", "OPF_EXAMPLES", "OPF_SAMPLE", "REAL_NER")


def pytest_collection_modifyitems(config, items):
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason=SHARED_MISSING)
    for item in items:
        module_globals = getattr(item.module, "__dict__", {}) if getattr(item, "module", None) else {}
        if any(name in module_globals for name in _SHARED_NAMES):
            item.add_marker(skip)


def pytest_unconfigure(config):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
