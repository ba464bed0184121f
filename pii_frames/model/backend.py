"""The execution backend of a model: chosen once, when the model is loaded.

The network is defined once, in :mod:`pii_frames.model.reference`. Its three
heavy operations go through ``model.backend``, an object with

* ``scope(rows)``: a context for one forward of ``rows`` token-expert pairs
  (thread settings), yielding the ops the layers call:
  ``linear(x, weight, bias)``, ``attention(q, k, v, sinks, key_valid, left, right)``
  and ``experts(moe, x_sorted, routing)``;
* ``prepare_moe(moe)``: store a layer's experts in the layout its kernels read
  (called per layer while loading, so peak memory stays at one layer more);
* ``release(model)``: give such weights back to the parameters (for training).

Backends: :class:`~pii_frames.model.reference.ReferenceOps` (plain torch,
differentiable: training, other devices), :class:`~pii_frames.model.cpu.CpuBackend`
and :class:`~pii_frames.model.cuda.CudaBackend`. Which kernels a backend uses is
decided when it is built (what the CPU offers is probed once per process), not
per call.
"""

from __future__ import annotations

import torch

from .reference import ReferenceOps

__all__ = ["select_backend", "use_backend"]


def select_backend(device: torch.device | str, weight_dtype: str = "float32", **cpu_options):
    """The backend for models on ``device`` with weight mode ``weight_dtype``.

    ``cpu_options`` go to :class:`~pii_frames.model.cpu.CpuBackend` (``schedule``, ``kernels``).

    >>> select_backend("cpu").name, select_backend("meta").name
    ('cpu', 'reference')
    """
    device = torch.device(device)
    if device.type == "cpu":
        from .cpu import CpuBackend

        return CpuBackend(weight_dtype, **cpu_options)
    if device.type == "cuda":
        from .cuda import CudaBackend

        return CudaBackend()
    return ReferenceOps()


def use_backend(model, backend):
    """Run ``model`` on ``backend`` from now on (preparing its experts); returns the model.

    >>> from pii_frames.engine.loading import EMBEDDED_MODEL_DIR
    >>> from pii_frames.model import load_model
    >>> use_backend(load_model(EMBEDDED_MODEL_DIR), ReferenceOps()).backend.name
    'reference'
    """
    if type(backend) is not type(model.backend):
        model.backend.release(model)
    for block in model.block:
        backend.prepare_moe(block.mlp)
    model.backend = backend
    return model
