"""The helpers behind a container's spec: /etc/hosts text, user lookup, --device parsing."""

from __future__ import annotations

import pytest

from pypod.engine.devices import parse_device
from pypod.engine.etcfiles import host_address, hosts_text
from pypod.errors import InvalidArgument
from pypod.runtime.users import ExecUser, lookup_groups, lookup_user

# what podman 4.3.1 wrote here for `--network none --name t1` on a host whose /etc/hosts is
# this one and whose address is 192.0.2.2
HOST_HOSTS = "127.0.0.1 localhost\n127.0.0.1 runsc\n127.0.0.1 vm"
PODMAN_HOSTS = (
    "127.0.0.1\tlocalhost\n127.0.0.1\trunsc\n127.0.0.1\tvm\n"
    "192.0.2.2\thost.containers.internal\n127.0.0.1\tde840067dfb3 t1\n"
)


def test_hosts_like_podman() -> None:
    assert hosts_text(HOST_HOSTS, [("de840067dfb3", "t1")], "192.0.2.2") == PODMAN_HOSTS


def test_hosts_adds_localhost_and_skips_taken_names() -> None:
    base = "# comment\n10.0.0.1   db  cache # trailing\n\n::1 ip6-localhost\n10.0.0.9\n"
    text = hosts_text(base, [("db", "t1")], None)
    assert text == (
        "10.0.0.1\tdb cache\n::1\tip6-localhost\n127.0.0.1\tlocalhost\n::1\tlocalhost\n"
        "127.0.0.1\tt1\n"
    )
    assert hosts_text(None, [], None) == "127.0.0.1\tlocalhost\n::1\tlocalhost\n"
    assert hosts_text(None, [("same", "same")], None).endswith("127.0.0.1\tsame\n")


def test_host_address_is_not_loopback() -> None:
    address = host_address()
    assert address is None or not address.startswith("127.")


PASSWD = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nshort:x:7\n"
GROUP = "root:x:0:\nwheel:x:10:user\nstaff:x:50:other,user\n"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", ExecUser(uid=0, gid=0, home="/root")),
        ("root", ExecUser(uid=0, gid=0, home="/root")),
        ("user", ExecUser(uid=1000, gid=1000, home="/home/user", sgids=(10, 50))),
        ("1000", ExecUser(uid=1000, gid=1000, home="/home/user", sgids=(10, 50))),
        ("user:staff", ExecUser(uid=1000, gid=50, home="/home/user")),
        ("user:123", ExecUser(uid=1000, gid=123, home="/home/user")),
        ("4242", ExecUser(uid=4242, gid=0, home="/")),
        ("short", ExecUser(uid=7, gid=0, home="/")),
    ],
)
def test_lookup_user(spec: str, expected: ExecUser) -> None:
    assert lookup_user(spec, passwd=PASSWD, group=GROUP) == expected


def test_lookup_user_without_files() -> None:
    assert lookup_user("", passwd=None, group=None) == ExecUser(uid=0, gid=0, home="/")
    assert lookup_user("5:6", passwd=None, group=None) == ExecUser(uid=5, gid=6, home="/")
    with pytest.raises(InvalidArgument, match="^unable to find user root: no matching entries"):
        lookup_user("root", passwd=None, group=None)


def test_lookup_groups() -> None:
    assert lookup_groups(["wheel", "99", "staff"], group=GROUP) == (10, 99, 50)
    with pytest.raises(InvalidArgument, match="^unable to find group nope: no matching entries"):
        lookup_groups(["nope"], group=GROUP)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/dev/fuse", ("/dev/fuse", "/dev/fuse", "rwm")),
        ("/dev/fuse:r", ("/dev/fuse", "/dev/fuse", "r")),
        ("/dev/loop0:/dev/xloop", ("/dev/loop0", "/dev/xloop", "rwm")),
        ("/dev/loop0:/dev/xloop:mw", ("/dev/loop0", "/dev/xloop", "mw")),
        ("/dev/loop0::r", ("/dev/loop0", "/dev/loop0", "r")),
    ],
)
def test_parse_device(text: str, expected: tuple[str, str, str]) -> None:
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["/dev/a:/b:rr", "/dev/a:/b:", "/dev/a:x", "/dev/a:/b:r:w"])
def test_parse_device_errors(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_device(text)
