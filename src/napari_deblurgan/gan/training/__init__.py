"""Training: the trainer (``train``), its losses (``losses``), checks of its options (``recipe_checks``),
lineages of stages (``lineage``), quality metrics (``metrics``), evaluation on pairs (``evaluate``) and
export of a checkpoint's generator (``export``). Imports :mod:`..io`, :mod:`..model`, :mod:`..data` and
:mod:`..restoration` (evaluation deblurs)."""
