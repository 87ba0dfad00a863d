"""napari widgets (magicgui/Qt only; the work is done by :mod:`napari_deblurgan.gan`).

Each module is imported by its npe2 command when the user opens the widget, never at napari start-up.
"""
