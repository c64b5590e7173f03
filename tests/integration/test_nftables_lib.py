"""pypod.linux.nftables: libnftables gives what `nft -j` gives (run in a network namespace of
the test's own: `unshare -n`, so the host's tables are never touched)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nftables"
)

_SCRIPT = r"""
import json, subprocess, sys
from pypod.linux import nftables

def nft(*args):
    p = subprocess.run(["nft", *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr

out = {}
out["add"] = nftables.run("add table inet pypodtest")
doc = {"nftables": [
    {"add": {"chain": {"family": "inet", "table": "pypodtest", "name": "c"}}},
    {"add": {"rule": {"family": "inet", "table": "pypodtest", "chain": "c",
                      "comment": "pypod test", "expr": [{"accept": None}]}}},
]}
out["json"] = nftables.run(json.dumps(doc))
out["lib_list"] = nftables.run("list table inet pypodtest")
out["cli_list"] = nft("-j", "list", "table", "inet", "pypodtest")
out["lib_missing"] = nftables.run("list table inet nosuch")
out["cli_missing"] = nft("-j", "list", "table", "inet", "nosuch")
out["bad_json"] = nftables.run('{"nftables": [{"add": {"table": {"family": "nope"}}}]}')
from pypod.errors import PypodError
from pypod.network import firewall
out["firewall_lib"] = firewall.list_table()
nftables._tried, nftables._lib = True, None  # as when libnftables is not installed: runs nft
out["firewall_cli"] = firewall.list_table()
try:
    firewall._nft(["-j", "list", "table", "inet", "nosuch"], None, "list it")
except PypodError as e:
    out["firewall_cli_error"] = str(e)
print(json.dumps(out))
"""


def _in_new_netns() -> dict[str, list[object]]:
    p = subprocess.run(["unshare", "-n", sys.executable, "-c", _SCRIPT],
                       capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(p.stdout)  # type: ignore[no-any-return]


def test_commands_and_json_documents_apply_and_list_as_nft_does() -> None:
    out = _in_new_netns()
    assert out["add"][0] == 0
    assert out["json"][0] == 0, out["json"]
    rc, lib_out, _ = out["lib_list"]
    cli_rc, cli_out, _ = out["cli_list"]
    assert rc == cli_rc == 0
    assert json.loads(lib_out) == json.loads(cli_out)
    rules = [o["rule"] for o in json.loads(lib_out)["nftables"] if "rule" in o]
    assert [r["comment"] for r in rules] == ["pypod test"]


def test_errors_are_nfts_words() -> None:
    out = _in_new_netns()
    rc, _, err = out["lib_missing"]
    cli_rc, _, cli_err = out["cli_missing"]
    assert rc != 0 and cli_rc != 0
    assert "No such file or directory" in err and "No such file or directory" in cli_err
    assert err.splitlines()[0] == cli_err.splitlines()[0]
    rc, _, err = out["bad_json"]
    assert rc != 0 and err.strip()


def test_the_firewall_uses_the_library_or_else_nft_alike() -> None:
    out = _in_new_netns()
    assert out["firewall_lib"] is None  # no `inet pypod` table in a new namespace
    assert out["firewall_cli"] is None
    assert str(out["firewall_cli_error"]).startswith("list it: nft failed: Error: No such file")
