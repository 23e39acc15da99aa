"""The figures of ``chase plot`` drawn from plain data, checked on the drawn figure itself:
titles wrap inside the figure, panels share their axis ranges, legends cover no bar and say
what every colour and the amenable criterion mean."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from matplotlib.colors import to_rgba
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from chase.plots import figures
from chase.plots.figures import Curves, GroupChannels

LONG = (
    "channel UMM (sum of |w| over active weights / original weights) per group, end of "
    "training: a_rather_long_run_folder_name_with_its_seed_0 (cifar_resnet20, synthetic, chase)"
    " compared with another_rather_long_run_folder_name_with_its_seed_1 (cifar_resnet20, "
    "synthetic, rigl) and with a_third_rather_long_run_folder_name_2 (vgg19, cifar100, mest)"
    "\n0.3% of live channels sparse amenable: density < 0.5 × its group's density"
)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every figure that ``figures.save`` writes, kept for inspection after it is drawn."""
    kept: list[Any] = []
    real = figures.save

    def save(fig: Any, path: Path) -> Path:
        kept.append(fig)
        return real(fig, path)

    monkeypatch.setattr(figures, "save", save)
    return kept


def train_records(steps: int, density: list[float] | None = None) -> list[dict[str, Any]]:
    density = density or [0.1] * steps
    return [
        {"step": s + 1, "loss": 2.0 - 0.1 * s, "acc": 0.1 * s, "density": density[s],
         "channel_sparsity": min(0.5, 0.1 * s)}
        for s in range(steps)
    ]  # fmt: skip


def group(name: str, density: list[float], umm: list[float], alive: list[bool]) -> GroupChannels:
    live = [d for d, a in zip(density, alive) if a]
    mean = sum(live) / len(live)
    amenable = sum(d < 0.5 * mean for d in live)
    return GroupChannels(name, len(density), len(live), amenable, mean, density, umm, alive)


GROUPS = [
    # one starved channel (density 0.02 against a group density ~0.27) with a high UMM
    group(
        "layer1.conv1:out",
        [0.3, 0.32, 0.28, 0.02, 0.45],
        [0.03, 0.03, 0.02, 0.09, 0.04],
        [True, True, True, True, True],
    ),
    # group density 0.08: one channel just below the threshold 0.04, one just above; two removed
    group(
        "layer2.conv1:out",
        [0.1, 0.1, 0.1, 0.1, 0.998 * 0.04, 1.002 * 0.04, 0.0, 0.0],
        [0.004] * 8,
        [True] * 6 + [False, False],
    ),
    group("fc:out", [1.0] * 4, [0.02, 0.01, 0.03, 0.02], [True] * 4),
]

LAYERS = [("conv1", 16, 16), ("layer1.conv1", 64, 13), ("layer1.conv2", 64, 64), ("fc", 10, 10)]


def draw(kind: str, tmp_path: Path, title: str, drawn: list[Any]) -> Any:
    """Draw one figure of ``kind`` and return the drawn ``Figure``."""
    path = tmp_path / f"{kind}.png"
    if kind == "curves":
        runs = [Curves("run", train_records(6), [{"step": 6, "loss": 1.9, "acc": 0.2}], 0.1)]
        figures.curves(runs, path, title)
    elif kind == "channels":
        live = [(0, 100), (3, 80), (6, 60)]
        figures.channels(live, ["a", "b"], [36, 64], [(3, [30, 50]), (6, [20, 40])], path, title)
    elif kind == "widths":
        figures.widths(LAYERS, path, title)
    else:
        figures.channel_histograms(GROUPS, kind, 0.5, path, title)
    return drawn[-1]


def suptitle_of(fig: Any) -> Text:
    wanted = fig.get_suptitle()
    return next(t for t in fig.findobj(Text) if t.get_text() == wanted and t.get_figure() is fig)


KINDS = ["curves", "channels", "widths", "density", "umm"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_long_title_wraps_inside_the_figure_above_the_panels(kind: str, tmp_path, drawn) -> None:
    fig = draw(kind, tmp_path, LONG, drawn)
    renderer = fig.canvas.get_renderer()
    title = suptitle_of(fig)
    unwrapped = fig.text(0, 0, LONG, fontproperties=title.get_fontproperties())
    assert unwrapped.get_window_extent(renderer).width > fig.bbox.width  # would clip
    unwrapped.remove()
    box = title.get_window_extent(renderer)
    assert box.x0 > 0.02 * fig.bbox.width and box.x1 < 0.98 * fig.bbox.width  # a margin left
    assert box.y1 <= fig.bbox.height
    assert title.get_text().count("\n") > LONG.count("\n")  # wrapped, not shrunk or clipped
    assert title.get_text().split() == LONG.split()  # every word kept, in order
    for ax in fig.axes:
        assert box.y0 >= ax.get_window_extent(renderer).y1 - 0.5, "title over a panel"


@pytest.mark.parametrize("kind", KINDS)
def test_a_title_that_fits_is_left_as_written(kind: str, tmp_path, drawn) -> None:
    fig = draw(kind, tmp_path, "short title\nsecond line", drawn)
    assert suptitle_of(fig).get_text() == "short title\nsecond line"


@pytest.mark.parametrize("key", ["density", "umm"])
def test_histogram_panels_share_one_x_range_and_bins(key: str, tmp_path, drawn) -> None:
    fig = draw(key, tmp_path, "t", drawn)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert len(panels) == len(GROUPS)
    assert len({ax.get_xlim() for ax in panels}) == 1
    widths = {round(p.get_width(), 9) for ax in panels for p in ax.patches if p.get_height() > 0}
    assert len(widths) == 1  # the same bins everywhere
    low, high = panels[0].get_xlim()
    assert low == 0 and high >= 0.5  # relative values, the threshold 0.5 in range


@pytest.mark.parametrize("key", ["density", "umm"])
def test_amenable_bars_follow_the_density_criterion_and_say_so(key: str, tmp_path, drawn) -> None:
    fig = draw(key, tmp_path, "t", drawn)
    orange = to_rgba("tab:orange")
    panels = [ax for ax in fig.axes if ax.axison]
    for ax, g in zip(panels, GROUPS):
        starved = [p for p in ax.patches if p.get_facecolor() == orange and p.get_height() > 0]
        assert sum(p.get_height() for p in starved) == g.amenable
    bars = [
        ([p for p in ax.patches if p.get_facecolor() == orange and p.get_height() > 0],
         [p for p in ax.patches if p.get_facecolor() != orange and p.get_height() > 0])
        for ax in panels[:2]
    ]  # fmt: skip
    if key == "umm":  # layer1's starved channel has its group's highest UMM: its bar is there
        starved, normal = bars[0]
        assert starved[0].get_x() > max(p.get_x() for p in normal)
    else:  # the threshold is a bin edge: orange wholly left of it, blue wholly right
        for starved, normal in bars:
            assert max(p.get_x() + p.get_width() for p in starved) <= 0.5 + 1e-9
            assert min(p.get_x() for p in normal) >= 0.5 - 1e-9
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "sparse amenable: density < 0.5 × its group's density" in texts


def test_widths_legend_covers_no_bar_and_names_every_colour(tmp_path, drawn) -> None:
    fig = draw("widths", tmp_path, "t", drawn)
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    bars = [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 4 * len(LAYERS)
    for bar in bars:
        assert not box.overlaps(bar.get_window_extent(renderer))
    named = {to_rgba(h.get_facecolor()) for h in legend.legend_handles}
    assert {to_rgba(bar.get_facecolor()) for bar in bars} <= named


def test_curve_panels_share_one_step_axis_from_zero(tmp_path, drawn) -> None:
    fig = draw("curves", tmp_path, "t", drawn)
    assert len(fig.axes) == 4  # loss, accuracy, density, channel sparsity
    assert len({ax.get_xlim() for ax in fig.axes}) == 1
    low, high = fig.axes[0].get_xlim()
    assert low == 0 and high >= 6


def test_density_panel_is_scaled_to_the_density_and_explains_an_overshoot(tmp_path, drawn) -> None:
    density = [0.1, 0.145, 0.14, 0.12, 0.105, 0.1]
    bound = [(t, 0.1 + 0.025 * (1 + math.cos(math.pi * t / 6))) for t in range(7)]
    run = Curves("run", train_records(6, density), [], 0.1, bound, "MEST soft bound: note", 0.5)
    figures.curves([run], tmp_path / "c.png", "t")
    ax = drawn[-1].axes[2]
    low, high = ax.get_ylim()
    assert low == 0 and 0.145 < high < 0.3  # not squashed onto 0..1
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines["budget 0.1"].get_ydata()) == {0.1}
    assert max(lines["MEST soft bound: note"].get_ydata()) >= max(density)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "MEST soft bound: note" in texts and "budget 0.1" in texts
    assert "soft bound" in ax.get_title()


def test_several_runs_share_one_legend_below_the_panels(tmp_path, drawn) -> None:
    runs = [Curves(f"run{i}", train_records(4 + 2 * i), [], 0.1) for i in range(3)]
    figures.curves(runs, tmp_path / "c.png", "t")
    fig = drawn[-1]
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:3] == ["run0", "run1", "run2"]
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    assert all(not box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    assert fig.axes[0].get_xlim()[1] >= 8  # the longest run


def test_channels_heatmap_and_line_share_the_step_axis(tmp_path, drawn) -> None:
    fig = draw("channels", tmp_path, "t", drawn)
    top, bottom = fig.axes[:2]
    assert top.get_xlim() == bottom.get_xlim() == (0.0, 6.0)
    (mesh,) = bottom.collections
    assert mesh.get_array().shape == (2, 2)  # groups x snapshots, no invented step-0 column
    assert sorted(t.get_position()[0] for t in bottom.texts) == [1.5, 1.5, 4.5, 4.5]  # centred
