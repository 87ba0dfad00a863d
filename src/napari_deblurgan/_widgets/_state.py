"""Session state shared by the widgets: models trained in this napari session."""

from __future__ import annotations

from pathlib import Path

from psygnal import Signal


class TrainedModels:
    """Model files trained in this session, by run name; ``changed`` fires whenever one is added or updated."""

    changed = Signal()

    def __init__(self) -> None:
        self._paths: dict[str, Path] = {}

    def add(self, name: str, path: Path) -> None:
        self._paths[name] = Path(path)
        self.changed.emit()

    def items(self) -> list[tuple[str, Path]]:
        return list(self._paths.items())


#: The training widget adds to this; the deblur widget offers its entries as models.
trained_models = TrainedModels()
