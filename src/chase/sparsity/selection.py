"""Exact, deterministic top-k selection over flat score vectors.

``torch.topk`` is slow on tens of millions of elements and says nothing about ties. Here the
k-th largest value is found with ``kthvalue`` (on a pre-filtered subset for large inputs),
everything above it is taken, and ties at the threshold go to the lowest indices. The result
depends only on the scores, never on the device, thread count or call history.
"""

from __future__ import annotations

import math

import torch

#: Inputs longer than this are first filtered with a threshold estimated from a strided sample.
_FILTER_MIN = 1 << 16
_SAMPLE = 1 << 14


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Sorted int64 positions of the ``k`` largest entries of a 1-D tensor (ties: lowest index).

    Entries equal to ``-inf`` are never chosen before finite ones; callers that exclude
    positions set their score to ``-inf`` and keep ``k`` at most the number of finite entries.
    """
    n = scores.numel()
    if k <= 0:
        return torch.empty(0, dtype=torch.int64, device=scores.device)
    if k >= n:
        return torch.arange(n, device=scores.device)
    if n > _FILTER_MIN and k < n // 4:
        candidates = _prefilter(scores, k)
        if candidates is not None:
            return candidates[_exact_top_k(scores[candidates], k)]
    return _exact_top_k(scores, k)


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the same shape as ``scores`` marking its ``k`` largest entries."""
    flat = scores.reshape(-1)
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=scores.device)
    mask[top_k(flat, k)] = True
    return mask.view(scores.shape)


def _exact_top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    n = scores.numel()
    threshold = torch.kthvalue(scores, n - k + 1).values
    above = scores > threshold
    ties = scores == threshold
    need = k - above.sum()
    chosen = above | (ties & (ties.cumsum(0) <= need))
    return chosen.nonzero().squeeze(1)


def _prefilter(scores: torch.Tensor, k: int) -> torch.Tensor | None:
    """Positions of every entry >= a lower bound of the k-th largest value, or None.

    The bound comes from a strided (deterministic) sample with a safety margin; the caller
    falls back to the exact path when fewer than k entries pass it.
    """
    n = scores.numel()
    stride = max(1, n // _SAMPLE)
    sample = scores[::stride]
    m = sample.numel()
    want = min(m, math.ceil(m * k / n * 1.25) + 64)
    bound = torch.kthvalue(sample, m - want + 1).values
    candidates = (scores >= bound).nonzero().squeeze(1)
    if candidates.numel() < k:
        return None
    return candidates
