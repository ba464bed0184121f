"""RMSNorm computed in fp32 (the reference keeps norms in fp32 at every precision)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RMSNorm"]


class RMSNorm(nn.Module):
    """y = x * rsqrt(mean(x^2) + eps) * scale, in fp32, returned in ``out_dtype`` (default: x's dtype).

    >>> norm = RMSNorm(4)
    >>> with torch.no_grad():
    ...     _ = norm.scale.fill_(1.0)
    >>> norm(torch.full((1, 4), 2.0)).round(decimals=4).tolist()
    [[1.0, 1.0, 1.0, 1.0]]
    """

    def __init__(self, size: int, eps: float = 1e-5):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.scale.float() * normed).to(out_dtype or x.dtype)
