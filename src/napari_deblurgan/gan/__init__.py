"""The model, losses, data and training loop (no Qt, no napari)."""
