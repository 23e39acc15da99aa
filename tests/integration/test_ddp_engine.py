"""The engine under DistributedDataParallel: 2 gloo processes on CPU keep identical masks."""

import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
import nets
from chase import SparsityConfig, sparsify
from chase.train import distributed


def _worker(rank: int, world: int, store: str, out: str, updater: str, seeds: tuple[int, int]):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        _train_and_save(rank, out, updater, seeds)
    finally:
        # The DDP wrapper and the engine must be freed before the group is destroyed (freeing a
        # wrapper after it aborts the process: "terminate called without an active exception").
        # They live only in _train_and_save's frame, so they are gone by now; teardown collects
        # any reference cycle and waits for the other rank before leaving.
        distributed.teardown()


def _train_and_save(rank: int, out: str, updater: str, seeds: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = nets.vgg_style()
    ddp = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    cfg = SparsityConfig(
        density=0.2,
        updater=updater,
        scope="global",
        update_every=3,
        total_steps=12,
        seed=seeds[rank],
    )
    engine = sparsify(ddp, optimizer, cfg)
    for step in range(12):
        x, y = nets.batch(model, 100 * rank + step)  # every rank sees different data
        optimizer.zero_grad()
        nn.functional.cross_entropy(ddp(x), y).backward()
        optimizer.step()
        engine.check()  # includes the cross-rank checksum comparison
    torch.save(
        {
            "masks": dict(engine.masks.items()),
            "layers": engine.layers,
            "weights": dict(model.named_parameters()),
        },
        f"{out}.{rank}",
    )


@pytest.mark.parametrize("updater", ["set", "mest"])
def test_masks_identical_on_every_rank(tmp_path, updater):
    out = str(tmp_path / "result")
    # different seeds per rank: only the engine's broadcast from rank 0 can make masks agree
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), out, updater, (5, 6)), nprocs=2)
    r0, r1 = (torch.load(f"{out}.{r}", weights_only=True) for r in (0, 1))
    assert (
        r0["layers"]
        == r1["layers"]
        == ["0.weight", "3.weight", "7.weight", "10.weight", "16.weight"]
    )
    for name in r0["layers"]:
        assert torch.equal(r0["masks"][name], r1["masks"][name]), name
    for key, value in r0["weights"].items():
        assert torch.allclose(value, r1["weights"][key]), key
