"""Pieces every pypod program shares: the placeholder for a program whose issue has not landed."""

from __future__ import annotations

import sys

from pypod import __version__


def not_yet_program(prog: str, compatible_with: str, argv: list[str] | None = None) -> int:
    """Answer --help/--version for a program that does nothing else yet; fail clearly otherwise."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["--version"], ["-v"], ["version"]):
        print(f"{prog} version {__version__}")
        return 0
    if not args or args[:1] in (["--help"], ["-h"], ["help"]):
        print(
            f"Usage: {prog} [options] COMMAND\n\n"
            f"{prog} is pypod's {compatible_with}-compatible program.\n"
            "No command is supported yet: it arrives with its own issue.\n\n"
            "Options:\n  -h, --help      show this help\n  -v, --version   print the version"
        )
        return 0
    print(f"{prog}: '{args[0]}' is not supported yet", file=sys.stderr)
    return 125 if prog == "pypod" else 1
