"""``python -m napari_deblurgan`` (also what ``torchrun -m napari_deblurgan train ...`` runs)."""

from napari_deblurgan.cli import main

raise SystemExit(main())
