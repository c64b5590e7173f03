"""A small command-line flag parser in the style of Go's urfave/cli (runc) and pflag (podman).

Why not argparse: it costs milliseconds of import and set-up on every `pypod-runtime` call,
and runc's conventions (`-flag` and `--flag`, `--flag=value`, flags stop at the first argument)
are simpler to state directly.
"""

from __future__ import annotations

from pypod.errors import InvalidArgument
from pypod.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


@record(kw_only=False)
class Flag:
    names: tuple[str, ...]  # first one is the canonical name, without dashes
    takes_value: bool = False
    multiple: bool = False
    help: str = ""
    default: str | None = None


@record(frozen=False, kw_only=False)
class Parsed:
    values: dict[str, object] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)

    def text(self, name: str) -> str | None:
        v = self.values.get(name)
        return v if isinstance(v, str) else None

    def flag(self, name: str) -> bool:
        return self.values.get(name) is True

    def texts(self, name: str) -> list[str]:
        v = self.values.get(name)
        return list(v) if isinstance(v, list) else []

    def number(self, name: str, default: int = 0) -> int:
        v = self.text(name)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise InvalidArgument(f'invalid value "{v}" for flag --{name}: not a number') from None


def parse(args: Sequence[str], flags: Sequence[Flag], *, interspersed: bool = False) -> Parsed:
    """Parse `args`; flags stop at the first non-flag argument unless `interspersed`."""
    by_name = {n: f for f in flags for n in f.names}
    out = Parsed()
    for f in flags:
        if f.default is not None:
            out.values[f.names[0]] = f.default
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.args.extend(args[i + 1 :])
            break
        if not arg.startswith("-") or arg == "-":
            if not interspersed:
                out.args.extend(args[i:])
                break
            out.args.append(arg)
            i += 1
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        flag = by_name.get(name)
        if flag is None:
            # grouped short booleans: -dt
            if (
                len(arg) > 2
                and arg[1] != "-"
                and all(c in by_name and not by_name[c].takes_value for c in arg[1:])
            ):
                for c in arg[1:]:
                    out.values[by_name[c].names[0]] = True
                i += 1
                continue
            # a short flag with its value attached: -t0, -p8080
            short = by_name.get(arg[1:2]) if len(arg) > 2 and arg[1] != "-" else None
            if short is None or not short.takes_value:
                raise InvalidArgument(f"flag provided but not defined: {arg.split('=')[0]}")
            flag, eq, value = short, "=", arg[2:]
        key = flag.names[0]
        if flag.takes_value:
            if not eq:
                if i + 1 >= len(args):
                    raise InvalidArgument(f"flag needs an argument: {arg}")
                i += 1
                value = args[i]
            if flag.multiple:
                current = out.values.get(key)
                lst = current if isinstance(current, list) else []
                lst.append(value)
                out.values[key] = lst
            else:
                out.values[key] = value
        else:
            if eq and value.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f'invalid boolean value "{value}" for {arg}')
            out.values[key] = not eq or value.lower() in ("true", "1")
        i += 1
    return out


def help_text(flags: Sequence[Flag]) -> str:
    lines = []
    for f in flags:
        names = ", ".join(("--" if len(n) > 1 else "-") + n for n in f.names)
        if f.takes_value:
            names += " value"
        lines.append(f"   {names:<30} {f.help}")
    return "\n".join(lines)
