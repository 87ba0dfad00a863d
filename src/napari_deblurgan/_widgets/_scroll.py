"""A magicgui Container that scrolls inside a napari dock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import Container
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QScrollArea, QWidget


class ScrollingContainer(Container):
    """A vertical Container inside a scroll area, so a tall dock keeps its buttons reachable on small screens.

    napari docks a magicgui widget's ``native``, which for ``scrollable=True`` is the widget inside the scroll
    area (the scroll area would be lost); here ``native`` is the scroll area itself and :attr:`inner` the
    widget that holds the layout. The scroll area stays as wide as the controls need (it never scrolls
    sideways), also once napari's style sheet or hidden rows change their widths.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(scrollable=True, **kwargs)
        self.inner.layout().addStretch()  # controls keep their height; spare room collects at the bottom
        self._fit = _FitWidth(self.root_native_widget)
        self.inner.installEventFilter(self._fit)
        self._undocked = _Undocked(self.root_native_widget, self.on_undocked)
        self.root_native_widget.installEventFilter(self._undocked)

    def on_undocked(self) -> None:
        """Called when napari closes the dock that held this widget (the widget outlives it, unparented)."""

    @property
    def native(self) -> QScrollArea:
        return self.root_native_widget

    @property
    def inner(self) -> QWidget:
        """The widget inside the scroll area, which holds the layout."""
        return self.root_native_widget.widget()

    def add_native(self, widget: QWidget) -> None:
        """Add a Qt widget (a plot) below the controls."""
        layout = self.inner.layout()
        layout.insertWidget(layout.count() - 1, widget)


class _FitWidth(QObject):
    """Sets a scroll area's minimum width to its widget's, beside a vertical scroll bar, whenever the
    widget's layout or style changes."""

    EVENTS = (QEvent.Type.LayoutRequest, QEvent.Type.Show, QEvent.Type.StyleChange, QEvent.Type.Polish)

    def __init__(self, area: QScrollArea) -> None:
        super().__init__(area)
        self._area = area

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in self.EVENTS:
            area = self._area
            bar = area.verticalScrollBar().sizeHint().width()
            area.setMinimumWidth(area.widget().minimumSizeHint().width() + bar + 2 * area.frameWidth())
        return False


class _Undocked(QObject):
    """Calls ``callback`` when the widget it filters loses the parent it had (napari's dock closed)."""

    def __init__(self, widget: QWidget, callback: Callable[[], None]) -> None:
        super().__init__(widget)
        self._callback = callback

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange and isinstance(watched, QWidget) and watched.parent() is None:
            self._callback()
        return False
