"""Files and arrays in and out, under everything else: image files and plane shapes (``images``), JSON
read safely (``json_files``), atomic and pickle-safe checkpoint files (``checkpoint``), the channel axes
of an array (``layout``), value ranges and dtype round trips (``intensity``) and dask arrays computed
block by block (``lazy``). Imports nothing else of :mod:`napari_deblurgan`."""
