"""Suite-wide settings.

Models in tests are tiny: their matmuls run faster on one thread than two on
small CI machines, and a second thread can stall badly when another process
holds the other core. Each test process pins torch to one thread, and every
test gets it back at one thread even if an earlier test changed it.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
