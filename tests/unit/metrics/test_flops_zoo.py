"""Dense FLOPs of every registered model agree with torch.utils.flop_counter within 1%."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from chase.metrics import layer_costs, total_flops
from chase.models import create_model, default_input_size, list_models


@pytest.mark.parametrize("name", list_models())
def test_zoo_dense_flops_match_torch(name):
    c, h, _ = default_input_size(name)
    side = min(h, 96)  # ImageNet-stem models at 96x96: the count is exact at any size
    x = torch.randn(2, c, side, side)
    model = create_model(name, num_classes=10, in_channels=c).eval()
    ours = total_flops(layer_costs(model, x))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    theirs = counter.get_total_flops() / x.shape[0]
    assert ours == pytest.approx(theirs, rel=0.01)
