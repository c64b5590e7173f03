"""Entry point of `pypod-runtime` (compatible with runc)."""

from __future__ import annotations


def main() -> int:
    return 1
