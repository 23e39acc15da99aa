"""Command-line settings for runs that take seconds (shared by the CLI tests)."""

#: Tiny synthetic CIFAR-shaped data and a small ResNet.
TINY = [
    "--model", "cifar_resnet20", "--dataset", "synthetic", "--batch-size", "16",
    "--set", "data.synthetic_size=64", "--set", "log_every=1", "--set", "bench.repeats=2",
    "--set", "bench.warmup=1", "--set", "recalibrate_bn_steps=2", "--quiet",
]  # fmt: skip
