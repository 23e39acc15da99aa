import pytest
import torch
from torch import nn

import nets
from chase.errors import ChaseError
from chase.structure import fold_batchnorm


@pytest.mark.parametrize("name", ["vgg19", "resnet20", "mobilenetv2", "concat"])
def test_folded_model_matches_and_has_no_batchnorm(name):
    case = nets.CASES[name]
    model = case.build().eval()
    x = case.inputs()
    with torch.no_grad():  # non-trivial statistics
        model.train()
        model(x * 2 + 1)
        model.eval()
        ref = model(x)
        folded = fold_batchnorm(model)
        got = folded(x)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert torch.allclose(ref, got, atol=1e-5 * float(ref.abs().max()), rtol=1e-4)
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_untraceable_model_gives_a_clear_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow cannot be traced symbolically
                return self.bn(self.conv(x))
            return self.conv(x)

    with pytest.raises(ChaseError, match="not symbolically traceable"):
        fold_batchnorm(Branchy())
