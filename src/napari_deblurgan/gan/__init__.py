"""The Qt-free core (no Qt, no napari), in five subpackages whose imports run one way, from the bottom:

- :mod:`.io`: files and arrays in and out (image files, JSON, atomic checkpoint files; channel axes,
  value ranges and dtype round trips, dask blocks). Imports nothing else of the package.
- :mod:`.model`: the networks (ResNet and NAFNet generators, the critic, narrowing), their weight files
  and the device they run on. Imports :mod:`.io`.
- :mod:`.data`: blurred/sharp pairs: blur synthesis, file pairs, the photo corpus, training batches.
  Imports :mod:`.io`.
- :mod:`.restoration`: deblurring (the public ``deblur``): options, pipelines, tiles, PSF refinement.
  Imports :mod:`.io` and :mod:`.model`.
- :mod:`.training`: the trainer, losses, recipes and lineages, evaluation and export. Imports all of the
  above (evaluation deblurs through :mod:`.restoration`).

No ``__init__`` imports a module: ``import napari_deblurgan`` loads neither torch nor Qt.
"""
