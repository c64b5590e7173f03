"""Entry point of `pypod` (compatible with podman)."""

from __future__ import annotations

from pypod.cli.common import not_yet_program


def main() -> int:
    return not_yet_program("pypod", "podman")
