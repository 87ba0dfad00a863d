"""A magicgui Container that scrolls inside a napari dock."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container
from qtpy.QtWidgets import QScrollArea, QWidget


class ScrollingContainer(Container):
    """A vertical Container inside a scroll area, so a tall dock keeps its buttons reachable on small screens.

    napari docks a magicgui widget's ``native``, which for ``scrollable=True`` is the widget inside the scroll
    area (the scroll area would be lost); here ``native`` is the scroll area itself and :attr:`inner` the
    widget that holds the layout.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(scrollable=True, **kwargs)
        self.inner.layout().addStretch()  # controls keep their height; spare room collects at the bottom

    def add_native(self, widget: QWidget) -> None:
        """Add a Qt widget (a plot) below the controls."""
        layout = self.inner.layout()
        layout.insertWidget(layout.count() - 1, widget)

    @property
    def native(self) -> QScrollArea:
        return self.root_native_widget

    @property
    def inner(self) -> QWidget:
        """The widget inside the scroll area, which holds the layout."""
        return self.root_native_widget.widget()
