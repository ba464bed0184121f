"""Suite-wide settings.

Models in tests are tiny: their matmuls run faster on one thread than two on
small CI machines, and a second thread can stall badly when another process
holds the other core. Each test process pins torch to one thread once here.
"""

import torch

torch.set_num_threads(1)
