"""build/gotar.py: tar headers as Go 1.19's archive/tar writes them.  The expected digests are
sha256 of what Go 1.19.8's tar.Writer wrote for the same headers (WriteHeader, "x" * size,
Close), computed once with the Debian golang-go package."""

from __future__ import annotations

import hashlib

import pytest

from pypod.build import gotar
from pypod.build.gotar import GoHeader, encode_header
from pypod.errors import InvalidArgument

LONG = "d" * 120 + "/" + "f" * 90
UNSPLIT = "n" * 150

CASES = [
    ("plain", GoHeader(name="a", typeflag=b"0", mode=0o644, size=3, uname="root", gname="root"),
     "5c08f9945d8c2a03c81271fed284a14030b5d30dcc1595c29eb05abf3f5ee967"),
    ("ustar prefix", GoHeader(name=LONG, typeflag=b"0", mode=0o644, size=1),
     "bc51634f8580744ad16e1a06fab3e9b35fa48163c6d0706efbb79c4e0edafedd"),
    ("pax path", GoHeader(name=UNSPLIT, typeflag=b"0", mode=0o644, size=1),
     "13b0377112e9f00e6c79da96068d32be6e6e9bc5a9b3266d9830a2e30fd50855"),
    ("gnu long name", GoHeader(name=UNSPLIT, typeflag=b"0", mode=0o644, size=1, format=gotar.GNU),
     "33a7110cf5fc220aeb98153d5db9c62d19e8792bd72e6c39b7ed3345793522d6"),
    ("gnu long link", GoHeader(name="l", linkname=UNSPLIT, typeflag=b"2", mode=0o777,
                               format=gotar.GNU),
     "0c7dad42ef00853dd283a3372d11a0bb934fea1de625831074f8a86a70a109e1"),
    ("pax uid", GoHeader(name="b", typeflag=b"0", mode=0o644, uid=3000000, gid=5),
     "1a6a2f52c0ece688bae23cb20c454ed88a56f4a43e9f77c575bf4fb9c2ed7f7c"),
    ("gnu base-256 uid", GoHeader(name="b", typeflag=b"0", mode=0o644, uid=3000000, gid=5,
                                  format=gotar.GNU),
     "36b9e935a36481be2b0f67f8c113bc708f8d361f9117fdc5e262f38443aa2761"),
    ("xattrs", GoHeader(name="x", typeflag=b"0", mode=0o644, size=2,
                        pax_records=(("SCHILY.xattr.user.a", "1"),
                                     ("SCHILY.xattr.security.capability", "\x01\x00\x00\x02"))),
     "01927bbb2ac2864db430875563f709586f3bbfd743c8ba98290c395609d58afc"),
    ("unicode", GoHeader(name="é/ü.txt", typeflag=b"0", mode=0o644, size=1, uname="ü"),
     "706dcf1d7318651a8c2fc5b41f7b93336e2e3bdc310ba2a30347e1ee8a11eec2"),
    ("device", GoHeader(name="dev/null", typeflag=b"3", mode=0o666, devmajor=1, devminor=3),
     "d0f97f96e836ba7772a0c3d3add33d6f3ca08f54f8be179b20d906de58b3d3ef"),
    ("gnu dir", GoHeader(name="d/", typeflag=b"5", mode=0o755, uname="root", gname="root",
                         format=gotar.GNU),
     "d7e95751cd755c9dadf33eb800304a8fca3a07268df2dbd3385cb27087953926"),
    ("global", GoHeader(name="pax_global_header", typeflag=b"g",
                        pax_records=(("comment", "abc"),), format=gotar.PAX),
     "7f22ab37d6cdaf13dc2db583dde33e0d2bac0942964a650709f1e624baf1c0dc"),
    ("mtime", GoHeader(name="m", typeflag=b"0", mode=0o600, mtime=1577934245),
     "1aba35579c4afe9f0f9fc39acaa562da383d8d2a7ff5d8230987d03050b689fb"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "header", "expected"), CASES, ids=[c[0] for c in CASES])
def test_as_go_writes_it(what: str, header: GoHeader, expected: str) -> None:
    data = encode_header(header)
    if header.typeflag == b"0" and header.size:
        data += b"x" * header.size + gotar.padding(header.size)
    assert hashlib.sha256(data + gotar.TRAILER).hexdigest() == expected


def test_a_regular_file_with_a_trailing_slash_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="trailing slash"):
        encode_header(GoHeader(name="a/", typeflag=b"0"))
