"""A live loss plot (matplotlib in Qt): content loss above, adversarial and critic losses below."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

PANELS = (("content",), ("adversarial", "critic"))


#: Points a curve keeps at most: past it, every other point is dropped and only every other step is
#: added from then on, so each step costs the same however long the run (10^5 steps would otherwise
#: cost milliseconds a step on the GUI thread).
MAX_POINTS = 2000


class LossPlot(FigureCanvasQTAgg):
    """Curves of the losses of training steps; :meth:`add` appends one step and redraws lazily.

    The step axis spans the run (0 to its last step) from the start; the loss axes start at 0..1 and fit
    the losses as they come. Long runs are thinned to :data:`MAX_POINTS` points a curve, evenly spaced."""

    def __init__(self, background: str = "#262930", foreground: str = "#f0f1f2") -> None:
        figure = Figure(figsize=(4, 3), layout="constrained", facecolor=background)
        super().__init__(figure)
        self.setMinimumHeight(220)
        self.axes = figure.subplots(2, 1, sharex=True)
        self.curves: dict[str, Line2D] = {}
        self.points: dict[str, tuple[list[float], list[float]]] = {}
        self.stride = 1  # steps between the points kept
        for ax, names in zip(self.axes, PANELS):
            ax.set_facecolor(background)
            ax.tick_params(colors=foreground, labelsize=8)
            for spine in ax.spines.values():
                spine.set_color(foreground)
            for name in names:
                (self.curves[name],) = ax.plot([], [], label=name, linewidth=1)
                self.points[name] = ([], [])
            ax.legend(loc="upper right", fontsize=8, labelcolor=foreground, facecolor=background, edgecolor=foreground)
        self.axes[-1].set_xlabel("step", color=foreground, fontsize=8)
        self.waiting = self.axes[0].text(
            0.5,
            0.5,
            "losses appear here during training",
            transform=self.axes[0].transAxes,
            ha="center",
            va="center",
            color=foreground,
            fontsize=8,
        )
        self._empty_axes(1)
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

    def _empty_axes(self, steps: int) -> None:
        for ax in self.axes:
            ax.set_xlim(0, max(1, steps))
            ax.set_ylim(0, 1, auto=True)  # the losses rescale it

    def reset(self, steps: int, adversarial: bool = True) -> None:
        """Empty the curves for a new run of ``steps`` steps (with or without the adversarial term)."""
        for name, curve in self.curves.items():
            curve.set_data([], [])
            self.points[name] = ([], [])
        self.stride = 1
        self._empty_axes(steps)
        self.waiting.set_visible(True)
        self.note.set_visible(not adversarial)
        self.draw_idle()

    def add(self, step: int, losses: dict[str, float]) -> None:
        """Append the losses of ``step`` (names without a curve, such as ``gp``, are ignored; so are steps
        between the points kept, see :data:`MAX_POINTS`)."""
        if step % self.stride:
            return
        for name, value in losses.items():
            if name in self.curves:
                xs, ys = self.points[name]
                xs.append(step)
                ys.append(value)
        if max(len(xs) for xs, _ in self.points.values()) > MAX_POINTS:
            self.stride *= 2
            for name, (xs, ys) in self.points.items():
                kept = [i for i, x in enumerate(xs) if x % self.stride == 0]
                self.points[name] = ([xs[i] for i in kept], [ys[i] for i in kept])
        for name, (xs, ys) in self.points.items():
            self.curves[name].set_data(xs, ys)
        self.waiting.set_visible(False)
        for ax in self.axes:
            if any(len(line.get_xdata()) for line in ax.lines):
                ax.relim()
                ax.autoscale_view(scalex=False)
            ax.set_xlim(0, max(ax.get_xlim()[1], step))
        self.draw_idle()
