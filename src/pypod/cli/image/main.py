"""Entry point of `pypod-image` (compatible with skopeo)."""

from __future__ import annotations

from pypod.cli.common import not_yet_program


def main() -> int:
    return not_yet_program("pypod-image", "skopeo")
