"""Interleaved YaRN rotary position embedding ("NTK by parts", truncate=False).

The frequencies are computed in fp32 with the same operation order as the
Hugging Face implementation, so angles at large positions agree bit for bit
with the parity reference.
"""

from __future__ import annotations

import math

import torch

from .config import ModelConfig

__all__ = ["yarn_inv_freq", "RotaryEmbedding", "apply_rotary"]


def yarn_inv_freq(config: ModelConfig) -> tuple[torch.Tensor, float]:
    """Inverse frequencies [head_dim // 2] and the cos/sin concentration factor.

    >>> from pii_frames.model.config import ModelConfig
    >>> cfg = ModelConfig(1, 640, 640, 128, 4, 1000, 33, 64, 14, 2)
    >>> inv_freq, concentration = yarn_inv_freq(cfg)
    >>> round(float(inv_freq[1]), 5), round(concentration, 5)
    (0.68904, 1.34657)
    """
    dim = config.head_dim
    base = config.rope_theta
    factor = config.rope_scaling_factor
    original_length = config.initial_context_length

    def correction_dim(num_rotations: float) -> float:
        return (dim * math.log(original_length / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    low = max(correction_dim(config.rope_ntk_beta), 0)
    high = min(correction_dim(config.rope_ntk_alpha), dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    pos_freqs = base ** (torch.arange(0, dim, 2).to(dtype=torch.float32) / dim)
    inv_freq_extrapolation = 1.0 / pos_freqs
    inv_freq_interpolation = 1.0 / (factor * pos_freqs)
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extrapolation_weight = 1 - ramp
    inv_freq = inv_freq_interpolation * (1 - extrapolation_weight) + inv_freq_extrapolation * extrapolation_weight
    concentration = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return inv_freq, concentration


class RotaryEmbedding(torch.nn.Module):
    """Rotation table for positions ``0..T-1`` (positions restart in every window).

    ``forward(T, device)`` returns complex64 [T, head_dim // 2] holding
    ``concentration * (cos + i sin)`` of each position's angles.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        # A plain attribute, not a buffer: it must stay a real CPU tensor even when
        # the module's parameters are created on the meta device for loading.
        with torch.device("cpu"):
            self.inv_freq, self.concentration = yarn_inv_freq(config)
        self._cache: dict[tuple[int, torch.device], torch.Tensor] = {}

    def forward(self, length: int, device: torch.device) -> torch.Tensor:
        key = (length, torch.device(device))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        # Built as ordinary tensors even under inference_mode so that a later
        # training forward can reuse the cached table.
        with torch.inference_mode(False), torch.no_grad():
            positions = torch.arange(length, device=device, dtype=torch.float32)
            angles = positions[:, None] * self.inv_freq.to(device=device, dtype=torch.float32)[None, :]
            rotation = torch.complex(angles.cos() * self.concentration, angles.sin() * self.concentration)
        if len(self._cache) > 64:  # windows have few distinct lengths; bound the cache anyway
            self._cache.clear()
        self._cache[key] = rotation
        return rotation


def apply_rotary(x: torch.Tensor, rotation: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Rotate interleaved pairs ``(x[2i], x[2i+1])`` of x [B, T, heads, head_dim], then multiply by scale.

    ``rotation`` is the complex [T, head_dim // 2] table from :class:`RotaryEmbedding`:
    pair i becomes ``(x[2i] cos - x[2i+1] sin, x[2i+1] cos + x[2i] sin)``, which is
    one complex multiplication. Math in fp32; the result has x's dtype.

    >>> x = torch.ones(1, 1, 1, 2)
    >>> apply_rotary(x, torch.tensor([[1j]])).tolist()
    [[[[-1.0, 1.0]]]]
    """
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    rotated = torch.view_as_real(pairs * rotation[None, :, None, :]).flatten(-2)
    return (rotated * scale).to(x.dtype)
