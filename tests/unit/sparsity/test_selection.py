import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chase.sparsity import selection
from chase.sparsity.selection import top_k, top_k_mask


def reference(scores: torch.Tensor, k: int) -> torch.Tensor:
    # stable sort by descending score: ties keep index order
    order = torch.sort(-scores.double(), stable=True).indices
    return torch.sort(order[:k]).values


@given(
    values=st.lists(st.integers(-3, 3), min_size=1, max_size=60),
    k=st.integers(0, 70),
)
def test_matches_stable_sort_with_ties(values, k):
    scores = torch.tensor(values, dtype=torch.float32)
    k = min(k, len(values))
    assert torch.equal(top_k(scores, k), reference(scores, k))


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16), frac=st.sampled_from([0.001, 0.05, 0.2]))
def test_large_inputs_take_the_prefiltered_path_and_stay_exact(seed, frac):
    g = torch.Generator().manual_seed(seed)
    n = selection._FILTER_MIN + 12345
    scores = torch.randint(0, 1000, (n,), generator=g).float()  # many ties
    scores[::7] = -float("inf")
    k = int(n * frac)
    calls = []
    original = selection._prefilter

    def spy(s, kk):
        out = original(s, kk)
        calls.append(out is not None)
        return out

    selection._prefilter = spy
    try:
        got = top_k(scores, k)
    finally:
        selection._prefilter = original
    assert calls == [True]
    assert torch.equal(got, reference(scores, k))


def test_edge_counts_and_mask_shape():
    s = torch.tensor([[3.0, 1.0], [2.0, 5.0]])
    assert top_k(s.reshape(-1), 0).numel() == 0
    assert top_k(s.reshape(-1), 9).tolist() == [0, 1, 2, 3]
    mask = top_k_mask(s, 2)
    assert mask.dtype == torch.bool and mask.tolist() == [[True, False], [False, True]]


def test_minus_inf_never_beats_finite():
    s = torch.tensor([-float("inf"), 0.0, -float("inf"), -5.0])
    assert top_k(s, 2).tolist() == [1, 3]
