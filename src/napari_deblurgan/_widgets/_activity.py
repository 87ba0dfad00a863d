"""A job's bar in napari's activity dock, updated a few times a second rather than at every step."""

from __future__ import annotations

from napari.utils import progress
from qtpy.QtCore import QTimer

#: Milliseconds between updates of the activity dock's bar.
INTERVAL_MS = 200


class ActivityProgress:
    """napari's progress bar for one job. napari's bar processes pending Qt events whenever it is set, so
    setting it at every step re-entered the widgets' step handlers (RecursionError once steps came faster
    than the GUI drew) and redrew the loss plot and the canvas at every step: the latest count is kept
    and shown at most every :data:`INTERVAL_MS`."""

    def __init__(self, total: int, desc: str) -> None:
        self._bar: progress | None = progress(total=total, desc=desc)
        self._pending: tuple[int, int] | None = None
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self._show)

    def update(self, done: int, total: int) -> None:
        """Count ``done`` of ``total``, shown within :data:`INTERVAL_MS`."""
        self._pending = (done, total)
        if not self._timer.isActive():
            self._timer.start()

    def close(self) -> None:
        """Show the last count and remove the bar from the dock."""
        self._timer.stop()
        self._show()
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _show(self) -> None:
        if self._pending is None or self._bar is None:
            return
        (done, total), self._pending = self._pending, None
        self._bar.total = total
        self._bar.update(done - self._bar.n)
