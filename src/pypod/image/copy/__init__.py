"""The copy pipeline (`copy_image`): pull, push, save, load and `pypod-image copy` all use it."""

from pypod.image.copy.options import CopyOptions, ProgressEvent
from pypod.image.copy.pipeline import copy_image

__all__ = ["CopyOptions", "ProgressEvent", "copy_image"]
