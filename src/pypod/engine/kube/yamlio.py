"""Reading and writing Kubernetes YAML the way podman 4.3 writes it.

podman marshals through sigs.k8s.io/yaml: Go structs become JSON, then YAML with sorted keys,
sequences not indented under their key, and strings that would read as another type (`"80"`,
`"FALSE"`, timestamps) in double quotes.  PyYAML is imported here only, so commands that do
not touch YAML never pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pypod.errors import InvalidArgument


def _dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: Any, value: str) -> Any:
        style = None
        if (
            value
            and dumper.resolve(yaml.ScalarNode, value, (True, False)) != ("tag:yaml.org,2002:str")
            or value == ""
        ):
            style = '"'
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    return Dumper


def dump(doc: dict[str, Any]) -> str:
    """One document as podman writes it (keys sorted, block style)."""
    import yaml

    return str(
        yaml.dump(
            doc,
            Dumper=_dumper(),
            sort_keys=True,
            default_flow_style=False,
            width=1 << 20,
            allow_unicode=True,
        )  # fmt: skip
    )


def dump_all(docs: Iterable[dict[str, Any]]) -> str:
    return "---\n".join(dump(d) for d in docs)


def load_all(text: str, where: str) -> list[dict[str, Any]]:
    """The documents of a YAML stream (empty ones dropped); InvalidArgument names `where`."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise InvalidArgument(f"{where}: not valid YAML: {e}") from None
    for d in docs:
        if not isinstance(d, dict):
            raise InvalidArgument(f"{where}: a YAML document is not a Kubernetes object (a map)")
    return docs
