"""Bidirectional banded grouped-query attention with per-head sink logits.

Query ``i`` attends to keys ``j`` with ``i - left <= j <= i + right`` (and not
padding). Each head has one extra "sink" logit that joins the fp32 softmax but
carries no value, so it only absorbs probability mass.

Two exact code paths, both O(T * window) or better:

* dense: when every pair of positions is inside the band (``T - 1 <= min(left,
  right)``) no band mask is needed at all;
* blocked: queries are cut into blocks of ``w = max(left, right)`` and each
  block attends to its own and the two neighbouring key blocks (3w keys), with
  a small static band mask.

Inference on CPU runs both through PyTorch's fused flash-attention kernel
(no [queries, keys] score tensor in memory), which also returns the
log-sum-exp, so the sink is applied afterwards as ``out * sigmoid(lse - sink)``
(the softmax with an extra value-less logit, rewritten). Training and other
devices use the explicit softmax with a sink column, which autograd
differentiates and which is NaN-free even for fully masked padding rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["banded_attention"]


def banded_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sinks: torch.Tensor,
    key_valid: torch.Tensor | None,
    left: int,
    right: int,
) -> torch.Tensor:
    """Attention output [B, T, heads * head_dim] for pre-scaled, rotated q and k.

    q: [B, T, Hq, D]; k, v: [B, T, Hkv, D] (query head h uses kv head h // (Hq // Hkv));
    sinks: [Hq] natural-log logits; key_valid: [B, T] bool (False = padding) or None.

    >>> q = torch.randn(1, 5, 4, 8); k = torch.randn(1, 5, 2, 8); v = torch.randn(1, 5, 2, 8)
    >>> banded_attention(q, k, v, torch.zeros(4), None, left=2, right=2).shape
    torch.Size([1, 5, 32])
    """
    length = q.shape[1]
    dense = length - 1 <= min(left, right)
    if _flash_usable(q, k, v, sinks):
        if dense:
            return _dense_flash(q, k, v, sinks, key_valid)
        return _blocked_flash(q, k, v, sinks, key_valid, left, right)
    if dense:
        return _dense_attention(q, k, v, sinks, key_valid)
    return _blocked_attention(q, k, v, sinks, key_valid, left, right)


_FLASH_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _flash_usable(q, k, v, sinks) -> bool:
    if _FLASH_CPU is None or q.device.type != "cpu" or q.dtype != torch.float32:
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, sinks)))


def _apply_sinks(out: torch.Tensor, lse: torch.Tensor, sink_rows: torch.Tensor) -> torch.Tensor:
    """Rescale a sink-free attention output: softmax with a sink = softmax * sigmoid(lse - sink)."""
    return out.mul_(torch.sigmoid(lse - sink_rows)[..., None])


def _zero_fully_masked_rows(out: torch.Tensor, lse: torch.Tensor) -> None:
    """Padding queries whose keys are all masked: force output 0 (the sink takes all mass).

    The kernel returns 0 for them today; a NaN here would reach real tokens through
    the next layer's keys, so do not depend on it.
    """
    out.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    lse.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def _dense_flash(q, k, v, sinks, key_valid):
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
    sink_rows = sinks.float().view(num_kv, group, 1).expand(num_kv, group, length).reshape(num_kv, group * length)
    out = _apply_sinks(out, lse, sink_rows)
    out = out.view(batch, num_kv, group, length, head_dim).permute(0, 3, 1, 2, 4)
    return out.reshape(batch, length, num_heads * head_dim)


def _blocked_flash(q, k, v, sinks, key_valid, left, right):
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
    band.masked_fill_(~_band_mask(block, left, right, q.device).repeat(group, 1), float("-inf"))
    out = torch.empty(blocks, num_kv, group * block, head_dim, dtype=q.dtype, device=q.device)
    lse = torch.empty(blocks, num_kv, group * block, dtype=torch.float32, device=q.device)
    # Blocks whose 3w keys are all real share one [G*w, 3w] band mask; only edge and
    # padded blocks need a mask of their own.
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
    sink_rows = sinks.float().view(num_kv, group, 1).expand(num_kv, group, block).reshape(num_kv, group * block)
    out = _apply_sinks(out, lse, sink_rows)
    out = out.view(batch, num_blocks, num_kv, group, block, head_dim).permute(0, 1, 4, 2, 3, 5)
    return out.reshape(batch, padded, num_heads * head_dim)[:, :length]


def _softmax_with_sink(scores: torch.Tensor, sink_column: torch.Tensor) -> torch.Tensor:
    # The sink column keeps every row finite, even rows whose keys are all masked
    # (padding queries), so neither the forward nor the backward produces NaN.
    logits = torch.cat([scores, sink_column.expand(*scores.shape[:-1], 1)], dim=-1)
    return torch.softmax(logits, dim=-1)[..., :-1]


def _dense_attention(q, k, v, sinks, key_valid):
    batch, length, num_heads, head_dim = q.shape
    num_kv = k.shape[2]
    group = num_heads // num_kv
    q_heads = q.view(batch, length, num_kv, group, head_dim).permute(0, 2, 3, 1, 4)
    q_heads = q_heads.reshape(batch, num_kv, group * length, head_dim)
    scores = torch.matmul(q_heads, k.permute(0, 2, 3, 1)).float()  # [B, kv, G*T, T]
    if key_valid is not None:
        scores = scores.masked_fill(~key_valid[:, None, None, :], float("-inf"))
    sink_column = sinks.float().view(1, num_kv, group, 1, 1).expand(1, num_kv, group, length, 1)
    probs = _softmax_with_sink(scores, sink_column.reshape(1, num_kv, group * length, 1))
    out = torch.matmul(probs.to(v.dtype), v.transpose(1, 2))  # [B, kv, G*T, D]
    out = out.view(batch, num_kv, group, length, head_dim).permute(0, 3, 1, 2, 4)
    return out.reshape(batch, length, num_heads * head_dim)


def _band_mask(block: int, left: int, right: int, device: torch.device) -> torch.Tensor:
    """[block, 3 * block] bool: query q of the middle block may see key slot j."""
    query_pos = torch.arange(block, device=device)[:, None]
    key_pos = torch.arange(3 * block, device=device)[None, :] - block
    offset = key_pos - query_pos
    return (offset >= -left) & (offset <= right)


def _blocked_attention(q, k, v, sinks, key_valid, left, right):
    batch, length, num_heads, head_dim = q.shape
    num_kv = k.shape[2]
    group = num_heads // num_kv
    block = max(left, right, 1)
    num_blocks = -(-length // block)
    padded = num_blocks * block
    if key_valid is None:
        key_valid = torch.ones(batch, length, dtype=torch.bool, device=q.device)
    # Queries padded to whole blocks; keys additionally get one empty block on each side.
    q = F.pad(q, (0, 0, 0, 0, 0, padded - length))
    k = F.pad(k, (0, 0, 0, 0, block, padded - length + block))
    v = F.pad(v, (0, 0, 0, 0, block, padded - length + block))
    valid = F.pad(key_valid, (block, padded - length + block), value=False)

    q_blocks = q.view(batch, num_blocks, block, num_kv, group, head_dim).permute(0, 3, 1, 4, 2, 5)
    q_blocks = q_blocks.reshape(batch, num_kv, num_blocks, group * block, head_dim)
    k_heads = k.permute(0, 2, 3, 1)  # [B, kv, D, T + 2w]
    k_blocks = k_heads.unfold(3, 3 * block, block)  # [B, kv, D, nb, 3w]
    k_blocks = k_blocks.permute(0, 1, 3, 2, 4)  # [B, kv, nb, D, 3w]
    v_blocks = v.permute(0, 2, 3, 1).unfold(3, 3 * block, block).permute(0, 1, 3, 4, 2)  # [B, kv, nb, 3w, D]
    valid_blocks = valid.unfold(1, 3 * block, block)  # [B, nb, 3w]

    scores = torch.matmul(q_blocks, k_blocks).float()  # [B, kv, nb, G*w, 3w]
    allowed = _band_mask(block, left, right, q.device).repeat(group, 1)  # [G*w, 3w]
    allowed = allowed[None, None, :, :] & valid_blocks[:, :, None, :]  # [B, nb, G*w, 3w]
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    sink_column = sinks.float().view(1, num_kv, 1, group, 1, 1).expand(1, num_kv, 1, group, block, 1)
    probs = _softmax_with_sink(scores, sink_column.reshape(1, num_kv, 1, group * block, 1))
    out = torch.matmul(probs.to(v.dtype), v_blocks)  # [B, kv, nb, G*w, D]
    out = out.view(batch, num_kv, num_blocks, group, block, head_dim).permute(0, 2, 4, 1, 3, 5)
    return out.reshape(batch, padded, num_heads * head_dim)[:, :length]
