"""Images: references, registries, transports and the copy pipeline."""
