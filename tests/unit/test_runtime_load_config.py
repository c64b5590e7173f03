"""pypod.runtime.container._load_config: config.json read without the `json` package.

It reads with pypod.jsoncodec and goes to json's own parser only when the text could hold NaN
or Infinity, which are not JSON numbers and are refused with load_spec's message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pypod.errors import ConfigError
from pypod.oci.runtime_defaults import default_spec, dump_spec_json
from pypod.runtime.container import _load_config


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.json"
    path.write_text(text)
    return str(path)


def test_the_config_is_read_as_json_reads_it(tmp_path: Path) -> None:
    spec = default_spec(rootless=False, uid=0, gid=0)
    spec["process"]["env"].append('NOTE=é ☃ \\ " NaN Infinity')  # (forces json's parser)
    spec["annotations"] = {"big": str(2**70), "float": "1.5e300"}
    text = dump_spec_json(spec)
    parsed, data, seccomp = _load_config(_write(tmp_path, text))
    assert data == json.loads(text)
    assert seccomp == spec["linux"].get("seccomp")
    assert parsed.process is not None and 'NOTE=é ☃ \\ " NaN Infinity' in parsed.process.env
    del spec["process"]["env"][-1]
    text = dump_spec_json(spec)
    assert _load_config(_write(tmp_path, text))[1] == json.loads(text)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_with_load_specs_message(
    tmp_path: Path, constant: str
) -> None:
    spec = default_spec(rootless=False, uid=0, gid=0)
    text = dump_spec_json(spec).replace('"ociVersion"', f'"x": {constant}, "ociVersion"', 1)
    with pytest.raises(ConfigError, match=f"invalid JSON: {constant} is not a JSON number"):
        _load_config(_write(tmp_path, text))


def test_invalid_json_is_reported_as_load_spec_words_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid JSON at line 1, column 2"):
        _load_config(_write(tmp_path, "{]"))
