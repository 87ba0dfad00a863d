"""Blurred/sharp pairs: blur kernels (``blur``), the GOPRO-like engine (``realistic``), dead-leaves images
(``dead_leaves``), file pairs (``pairs``), pairs from photos (``photo_pairs``) and from in-memory stacks
(``array_pairs``), training batches (``batches``) and batches made ahead in workers (``prefetch``), the
photo corpus (``corpus``) and dataset preparation (``prepare``). Imports only :mod:`..io`."""
