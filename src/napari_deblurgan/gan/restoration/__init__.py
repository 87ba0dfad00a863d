"""Deblurring: the public ``deblur`` and ``load_model`` (``inference``), its options in one table
(``options``), the numpy and dask pipelines (``pipeline``), the tile runner (``plane_runner``) with its
tile plans (``tiling``) and self-ensemble (``ensemble``), and PSF refinement (``psf_refine``). Imports
:mod:`..io` and :mod:`..model`."""
