"""Layers, images and containers on disk (drivers, layer tars, metadata, locks)."""
