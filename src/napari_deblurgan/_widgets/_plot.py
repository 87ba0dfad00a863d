"""A live loss plot (matplotlib in Qt): content loss above, adversarial and critic losses below."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

PANELS = (("content",), ("adversarial", "critic"))


class LossPlot(FigureCanvasQTAgg):
    """Curves of the losses of every training step; :meth:`add` appends one step and redraws lazily."""

    def __init__(self, background: str = "#262930", foreground: str = "#f0f1f2") -> None:
        figure = Figure(figsize=(4, 3), layout="constrained", facecolor=background)
        super().__init__(figure)
        self.setMinimumHeight(220)
        self.axes = figure.subplots(2, 1, sharex=True)
        self.curves: dict[str, Line2D] = {}
        for ax, names in zip(self.axes, PANELS):
            ax.set_facecolor(background)
            ax.tick_params(colors=foreground, labelsize=8)
            for spine in ax.spines.values():
                spine.set_color(foreground)
            for name in names:
                (self.curves[name],) = ax.plot([], [], label=name, linewidth=1)
            ax.legend(loc="upper right", fontsize=8, labelcolor=foreground, facecolor=background, edgecolor=foreground)
        self.axes[-1].set_xlabel("step", color=foreground, fontsize=8)
        self.note = self.axes[-1].text(
            0.5,
            0.5,
            "adversarial weight 0: content loss only",
            transform=self.axes[-1].transAxes,
            ha="center",
            va="center",
            color=foreground,
            fontsize=8,
            visible=False,
        )

    def reset(self, adversarial: bool = True) -> None:
        """Empty the curves for a new run (with or without the adversarial term)."""
        for curve in self.curves.values():
            curve.set_data([], [])
        self.note.set_visible(not adversarial)
        self.draw_idle()

    def add(self, step: int, losses: dict[str, float]) -> None:
        """Append the losses of ``step`` (names without a curve, such as ``gp``, are ignored)."""
        for name, value in losses.items():
            if name in self.curves:
                curve = self.curves[name]
                curve.set_data([*curve.get_xdata(), step], [*curve.get_ydata(), value])
        for ax in self.axes:
            ax.relim()
            ax.autoscale_view()
        self.draw_idle()
