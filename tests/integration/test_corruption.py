"""Every run file cut short, emptied or overwritten with random bytes, under every command that
reads it: one line and exit 2 with the folder unchanged, or the documented recovery (damaged
``metrics.jsonl`` lines are skipped with a warning; a resume cuts the file back, never pads)."""

import random
import shutil
from pathlib import Path

import pytest

from runs import TINY, snapshot

RUN = [
    *TINY, "--epochs", "1", "--method", "chase", "--set", "sparsity.update_every=2",
    "--set", "sparsity.channels.every=2", "--set", "sparsity.channels.offset=1",
    "--set", "sparsity.channels.sparsity=0.5", "--set", "bench.batch_sizes=[2]",
]  # fmt: skip

DAMAGES = {
    "truncated": lambda data: data[: len(data) // 2],
    "emptied": lambda data: b"",
    "random": lambda data: random.Random(len(data)).randbytes(max(len(data), 64)),
}

COMMANDS = {
    # the folder holds a finished run: a plain resume only checks its end-of-run files, so the
    # checkpoint is read by a resume that redoes the end
    "resume": lambda run, tmp: ["train", "--resume", run, "--redo-end", "--quiet"],
    "eval": lambda run, tmp: ["eval", run],
    "flops": lambda run, tmp: ["flops", run],
    "bench": lambda run, tmp: ["bench", run, "--batch-sizes", "1", "--repeats", "1"],
    "plot": lambda run, tmp: ["plot", run, "--out", tmp / "plots"],
}

#: file → the commands that read it (plot reads the checkpoint only without channels.json;
#: a resume redoing the end rewrites slim.pt, report.json and channels.json without reading
#: them, and a plain resume redoes the end when one of them is damaged)
READERS = {
    "config.yaml": ["resume", "eval", "flops", "bench", "plot"],
    "checkpoints/last.pt": ["resume", "flops", "bench"],
    "slim.pt": ["eval", "flops", "bench", "plot"],
    "report.json": ["bench", "plot"],
    "channels.json": ["plot"],
}
CASES = [(f, d, c) for f, cs in READERS.items() for d in DAMAGES for c in cs]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    from chase.cli.main import main

    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *RUN, "--out", str(out)]) == 0
    return out


def damaged_copy(finished: Path, tmp_path: Path, name: str, damage: str) -> tuple[Path, bytes]:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    path = run / name
    bad = DAMAGES[damage](path.read_bytes())
    path.write_bytes(bad)
    return run, bad


@pytest.mark.parametrize(("name", "damage", "command"), CASES)
def test_a_damaged_file_is_one_line_and_leaves_the_folder_as_it_was(
    cli, finished, tmp_path, name, damage, command
):
    run, _ = damaged_copy(finished, tmp_path, name, damage)
    before = snapshot(run)
    code, _, err = cli(*COMMANDS[command](run, tmp_path))
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("chase: error: "), err
    assert Path(name).name in lines[0]
    assert snapshot(run) == before
    assert not (tmp_path / "plots").exists()  # plot checks every file before drawing


@pytest.mark.slow  # drawing the figures takes seconds; read_metrics is unit-tested
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_plot_skips_damaged_metrics_lines_with_one_warning(cli, finished, tmp_path, caplog, damage):
    run, _ = damaged_copy(finished, tmp_path, "metrics.jsonl", damage)
    before = snapshot(run)
    with caplog.at_level("WARNING"):
        code, _, err = cli("plot", run, "--out", tmp_path / "plots")
    assert code == 0, err
    warnings = [r for r in caplog.records if "damaged line" in r.getMessage()]
    assert len(warnings) == (0 if damage == "emptied" else 1), caplog.text
    assert "Traceback" not in err
    assert snapshot(run) == before


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_resume_cuts_damaged_metrics_back_and_never_pads(cli, finished, tmp_path, caplog, damage):
    run, bad = damaged_copy(finished, tmp_path, "metrics.jsonl", damage)
    with caplog.at_level("WARNING"):
        code, _, err = cli("train", "--resume", run, "--redo-end", "--quiet")
    assert code == 0, err  # a finished run: its end is done again on request
    after = (run / "metrics.jsonl").read_bytes()
    assert after == bad[: len(after)]  # only ever cut, never padded or rewritten
    if damage != "random":
        assert "expects" in caplog.text  # the records it lost are reported


@pytest.mark.parametrize(
    ("name", "reader"),
    [("slim.pt", "eval"), pytest.param("report.json", "bench", marks=pytest.mark.slow),
     pytest.param("channels.json", "plot", marks=pytest.mark.slow)],
)  # fmt: skip
def test_resume_writes_damaged_end_of_run_files_again(cli, finished, tmp_path, name, reader):
    run, _ = damaged_copy(finished, tmp_path, name, "random")
    code, _, err = cli(*COMMANDS[reader](run, tmp_path))
    assert code == 2 and f"chase train --resume {run} writes it again" in err
    assert cli("train", "--resume", run, "--quiet")[0] == 0
    code, _, err = cli(*COMMANDS[reader](run, tmp_path))
    assert code == 0, err
