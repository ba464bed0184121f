"""Banded sink attention through PyTorch's fused CPU flash-attention kernel (inference, fp32).

Computes exactly :func:`pii_frames.model.reference.sink_attention` (same dense and
blocked cases) without a [queries, keys] score tensor in memory. The kernel also
returns the log-sum-exp, so the sink is applied afterwards:
softmax with one extra value-less logit = ``out * sigmoid(lse - sink)``.
Blocks whose 3w keys are all real share one [G*w, 3w] band mask; only edge and
padded blocks need a mask of their own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .reference import band_mask

__all__ = ["flash_sink_attention"]

_FLASH_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def flash_sink_attention(q, k, v, sinks, key_valid, left: int, right: int) -> torch.Tensor:
    """:func:`~pii_frames.model.reference.sink_attention` on the flash kernel (q, k, v fp32 on CPU).

    >>> q = torch.randn(1, 5, 4, 8); k = torch.randn(1, 5, 2, 8); v = torch.randn(1, 5, 2, 8)
    >>> from pii_frames.model.reference import sink_attention
    >>> ours = flash_sink_attention(q, k, v, torch.zeros(4), None, left=2, right=2)
    >>> bool(torch.allclose(ours, sink_attention(q, k, v, torch.zeros(4), None, 2, 2), atol=1e-5))
    True
    """
    if q.shape[1] - 1 <= min(left, right):
        return _dense(q, k, v, sinks, key_valid)
    return _blocked(q, k, v, sinks, key_valid, left, right)


def _zero_fully_masked_rows(out: torch.Tensor, lse: torch.Tensor) -> None:
    # Padding queries whose keys are all masked get 0 (the sink takes all mass). The kernel returns 0 for
    # them today; a NaN here would reach real tokens through the next layer's keys, so do not depend on it.
    out.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    lse.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def _sink_rows(sinks: torch.Tensor, num_kv: int, group: int, rows: int) -> torch.Tensor:
    return sinks.float().view(num_kv, group, 1).expand(num_kv, group, rows).reshape(num_kv, group * rows)


def _dense(q, k, v, sinks, key_valid):
    batch, length, num_heads, head_dim = q.shape
    num_kv = k.shape[2]
    group = num_heads // num_kv
    q_heads = q.view(batch, length, num_kv, group, head_dim).permute(0, 2, 3, 1, 4)
    q_heads = q_heads.reshape(batch, num_kv, group * length, head_dim)
    mask = None
    if key_valid is not None:
        mask = torch.zeros(batch, 1, 1, length, dtype=q.dtype, device=q.device)
        mask.masked_fill_(~key_valid[:, None, None, :], float("-inf"))
    out, lse = _FLASH_CPU(q_heads, k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask, scale=1.0)
    if mask is not None:
        _zero_fully_masked_rows(out, lse)
    out = out.mul_(torch.sigmoid(lse - _sink_rows(sinks, num_kv, group, length))[..., None])
    out = out.view(batch, num_kv, group, length, head_dim).permute(0, 3, 1, 2, 4)
    return out.reshape(batch, length, num_heads * head_dim)


def _blocked(q, k, v, sinks, key_valid, left, right):
    batch, length, num_heads, head_dim = q.shape
    num_kv = k.shape[2]
    group = num_heads // num_kv
    block = max(left, right, 1)
    num_blocks = -(-length // block)
    padded = num_blocks * block
    if key_valid is None:
        key_valid = torch.ones(batch, length, dtype=torch.bool, device=q.device)
    q = F.pad(q, (0, 0, 0, 0, 0, padded - length))
    k = F.pad(k, (0, 0, 0, 0, block, padded - length + block))
    v = F.pad(v, (0, 0, 0, 0, block, padded - length + block))
    valid = F.pad(key_valid, (block, padded - length + block), value=False)

    blocks = batch * num_blocks
    q_blocks = q.view(batch, num_blocks, block, num_kv, group, head_dim).permute(0, 1, 3, 4, 2, 5)
    q_blocks = q_blocks.reshape(blocks, num_kv, group * block, head_dim)
    # [B, kv, D, T + 2w] -> windows of 3w keys every w -> [B * nb, kv, 3w, D]
    k_blocks = k.permute(0, 2, 3, 1).unfold(3, 3 * block, block).permute(0, 3, 1, 4, 2)
    k_blocks = k_blocks.reshape(blocks, num_kv, 3 * block, head_dim)
    v_blocks = v.permute(0, 2, 3, 1).unfold(3, 3 * block, block).permute(0, 3, 1, 4, 2)
    v_blocks = v_blocks.reshape(blocks, num_kv, 3 * block, head_dim)
    valid_blocks = valid.unfold(1, 3 * block, block).reshape(blocks, 3 * block)

    band = torch.zeros(group * block, 3 * block, dtype=q.dtype, device=q.device)
    band.masked_fill_(~band_mask(block, left, right, q.device).repeat(group, 1), float("-inf"))
    out = torch.empty(blocks, num_kv, group * block, head_dim, dtype=q.dtype, device=q.device)
    lse = torch.empty(blocks, num_kv, group * block, dtype=torch.float32, device=q.device)
    complete = valid_blocks.all(dim=1)
    for selected, shared in ((torch.nonzero(complete).squeeze(1), True),
                             (torch.nonzero(~complete).squeeze(1), False)):
        if selected.numel() == 0:
            continue
        if shared:
            mask = band[None, None]
        else:
            key_mask = torch.zeros(selected.numel(), 3 * block, dtype=q.dtype, device=q.device)
            key_mask.masked_fill_(~valid_blocks[selected], float("-inf"))
            mask = (band[None] + key_mask[:, None, :])[:, None]
        o, l = _FLASH_CPU(q_blocks[selected], k_blocks[selected], v_blocks[selected], attn_mask=mask, scale=1.0)
        if not shared:
            _zero_fully_masked_rows(o, l)
        out[selected] = o
        lse[selected] = l
    out = out.mul_(torch.sigmoid(lse - _sink_rows(sinks, num_kv, group, block))[..., None])
    out = out.view(batch, num_blocks, num_kv, group, block, head_dim).permute(0, 1, 4, 2, 3, 5)
    return out.reshape(batch, padded, num_heads * head_dim)[:, :length]
