"""Applying layer tars: formats, entry order quirks, attributes, whiteouts, broken streams.

These run unprivileged (`rootless=True`: no chown, no device nodes, user.* xattrs); what needs
root (owners, devices, trusted xattrs, the hostile corpus) is in
tests/integration/test_archive_hostile.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import struct
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pypod.errors import StorageError
from pypod.storage.archive import OVERLAY, VFS, WhiteoutFormat
from pypod.storage.archive.apply import ApplyResult, apply_layer

Entry = tuple[tarfile.TarInfo, bytes]


def reg(name: str, data: bytes = b"", mode: int = 0o644, **kw: object) -> Entry:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_600_000_000
    for key, value in kw.items():
        setattr(info, key, value)
    return info, data


def entry(name: str, kind: bytes, mode: int = 0o755, **kw: object) -> Entry:
    info, _ = reg(name, b"", mode)
    for key, value in kw.items():
        setattr(info, key, value)
    info.type = kind
    return info, b""


def dir_(name: str, mode: int = 0o755, **kw: object) -> Entry:
    return entry(name, tarfile.DIRTYPE, mode, **kw)


def sym(name: str, target: str) -> Entry:
    return entry(name, tarfile.SYMTYPE, 0o777, linkname=target)


def link(name: str, target: str) -> Entry:
    return entry(name, tarfile.LNKTYPE, 0o644, linkname=target)


def tar_bytes(*entries: Entry, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def apply(
    data: bytes,
    dest: Path,
    *,
    whiteouts: WhiteoutFormat = OVERLAY,
    rootless: bool = True,
    max_size: int | None = None,
) -> ApplyResult:
    return apply_layer(
        io.BytesIO(data), str(dest), whiteouts=whiteouts, rootless=rootless, max_size=max_size
    )


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "layer"
    d.mkdir()
    return d


SIMPLE = (dir_("etc/"), reg("etc/hostname", b"box\n"), sym("etc/link", "hostname"))


# --- formats and digests ---------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_diff_id_is_the_digest_of_the_uncompressed_tar(dest: Path, compression: str) -> None:
    import zstandard

    plain = tar_bytes(*SIMPLE)
    blob = {
        "none": plain,
        "gzip": gzip.compress(plain),
        "zstd": zstandard.ZstdCompressor().compress(plain),
    }[compression]
    result = apply(blob, dest)
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert result.size == len(plain)
    assert result.compressed_size == len(blob)
    assert result.compression == compression
    assert (dest / "etc/hostname").read_bytes() == b"box\n"
    assert os.readlink(dest / "etc/link") == "hostname"


def test_multi_member_gzip_and_skippable_zstd_frames(tmp_path: Path) -> None:
    import zstandard

    plain = tar_bytes(*SIMPLE, reg("big", os.urandom(100_000)))
    half = len(plain) // 2
    two_members = gzip.compress(plain[:half]) + gzip.compress(plain[half:])
    (tmp_path / "a").mkdir()
    r = apply(two_members, tmp_path / "a")
    assert r.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    skippable = struct.pack("<II", 0x184D2A50, 3) + b"toc"
    frames = zstandard.ZstdCompressor().compress(plain[:half])
    frames += zstandard.ZstdCompressor().compress(plain[half:]) + skippable
    (tmp_path / "b").mkdir()
    r = apply(skippable + frames, tmp_path / "b")
    assert r.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert (tmp_path / "b/big").read_bytes() == (tmp_path / "a/big").read_bytes()


def test_bytes_after_the_end_blocks_count_in_the_diff_id(dest: Path) -> None:
    plain = tar_bytes(*SIMPLE) + b"\0" * 4096
    r = apply(plain, dest)
    assert r.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()


EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def test_empty_layers(dest: Path) -> None:
    # the usual empty layer is two zero blocks; an empty stream is read as empty too
    assert apply(b"\0" * 1024, dest).diff_id == EMPTY_LAYER
    assert apply(gzip.compress(b"\0" * 1024), dest).diff_id == EMPTY_LAYER
    empty = apply(b"", dest)
    assert empty.size == 0
    assert os.listdir(dest) == []


def test_gnu_and_ustar_formats_and_long_names(dest: Path) -> None:
    long = "d/" + "x" * 200 + "/" + "y" * 150
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        apply(tar_bytes(reg(long, b"1"), link("short", long), fmt=fmt), dest)
        assert (dest / long).read_bytes() == b"1"
        assert (dest / "short").stat().st_ino == (dest / long).stat().st_ino
    apply(tar_bytes(reg("u", b"ustar"), fmt=tarfile.USTAR_FORMAT), dest)
    assert (dest / "u").read_bytes() == b"ustar"


def test_sparse_file(dest: Path, tmp_path: Path) -> None:
    # a GNU sparse entry written by GNU tar, when it is there
    import shutil
    import subprocess

    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.seek(1 << 20)
        f.write(b"end")
    out = subprocess.run(
        ["tar", "--sparse", "--format=gnu", "-cf", "-", "-C", str(src), "sparse"],
        capture_output=True,
        check=True,
    ).stdout
    apply(out, dest)
    assert (dest / "sparse").read_bytes() == b"\0" * (1 << 20) + b"end"


# --- attributes and order --------------------------------------------------------------------


def test_modes_times_and_links(dest: Path) -> None:
    f_info, f_data = reg("bin/tool", b"#!/bin/sh\n", mode=0o751)
    f_info.pax_headers = {"mtime": "1600000000.123456789"}
    apply(
        tar_bytes(
            dir_("bin/", mode=0o750, mtime=1_500_000_000),
            (f_info, f_data),
            link("bin/tool2", "bin/tool"),
            sym("bin/sh", "/bin/busybox"),
            entry("run/fifo", tarfile.FIFOTYPE, 0o620),
        ),
        dest,
    )
    tool = (dest / "bin/tool").stat()
    assert stat.S_IMODE(tool.st_mode) == 0o751
    assert tool.st_mtime_ns == 1_600_000_000_123_456_789
    assert (dest / "bin/tool2").stat().st_ino == tool.st_ino
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert (dest / "bin/sh").lstat().st_mtime == 1_600_000_000
    assert stat.S_ISFIFO((dest / "run/fifo").lstat().st_mode)
    assert stat.S_IMODE((dest / "run/fifo").lstat().st_mode) == 0o620
    bin_ = (dest / "bin").stat()
    assert stat.S_IMODE(bin_.st_mode) == 0o750
    assert bin_.st_mtime == 1_500_000_000  # set after its content was written
    assert stat.S_IMODE((dest / "run").stat().st_mode) == 0o755  # implied parent


def test_file_before_its_directory_and_directory_after_its_files(dest: Path) -> None:
    apply(
        tar_bytes(
            reg("a/b/c", b"x"),
            dir_("a/b/", mode=0o700, mtime=1_400_000_000),
            dir_("a/", mode=0o711),
        ),
        dest,
    )
    assert (dest / "a/b/c").read_bytes() == b"x"
    assert stat.S_IMODE((dest / "a/b").stat().st_mode) == 0o700
    assert (dest / "a/b").stat().st_mtime == 1_400_000_000
    assert stat.S_IMODE((dest / "a").stat().st_mode) == 0o711


def test_read_only_directory_still_gets_its_content(dest: Path) -> None:
    apply(tar_bytes(dir_("ro/", mode=0o555), reg("ro/f", b"1")), dest)
    assert (dest / "ro/f").read_bytes() == b"1"
    assert stat.S_IMODE((dest / "ro").stat().st_mode) == 0o555


def test_later_entries_replace_earlier_ones(dest: Path) -> None:
    (dest / "d").mkdir()
    (dest / "d/old").write_text("old")
    (dest / "f").write_text("file")
    (dest / "keep").mkdir()
    (dest / "keep/inside").write_text("1")
    apply(
        tar_bytes(reg("d", b"now a file"), dir_("f/"), reg("f/x", b"2"), dir_("keep/", 0o700)),
        dest,
    )
    assert (dest / "d").read_bytes() == b"now a file"
    assert (dest / "f/x").read_bytes() == b"2"
    assert (dest / "keep/inside").read_text() == "1"  # a directory over a directory is kept
    assert stat.S_IMODE((dest / "keep").stat().st_mode) == 0o700


def test_unprivileged_drops_setuid_and_device_nodes(dest: Path) -> None:
    dev = entry("dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3)
    apply(tar_bytes(reg("su", b"x", mode=0o4755), dev, reg("sg", b"y", mode=0o2711)), dest)
    assert stat.S_IMODE((dest / "su").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "sg").stat().st_mode) == 0o711
    assert not (dest / "dev/null").exists()


def test_user_xattrs_kept_and_overlay_xattrs_from_the_tar_ignored(dest: Path) -> None:
    info, data = reg("f", b"x")
    info.pax_headers = {
        "SCHILY.xattr.user.note": "hello",
        "SCHILY.xattr.user.bin": b"\xff\x00\x01".decode("utf-8", "surrogateescape"),
        "SCHILY.xattr.user.overlay.opaque": "y",
    }
    d_info, _ = dir_("d/")
    d_info.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y"}
    try:
        os.setxattr(dest, "user.probe", b"1")
    except OSError:
        pytest.skip("the test directory's filesystem has no user xattrs")
    apply(tar_bytes((info, data), (d_info, b"")), dest)
    assert os.getxattr(dest / "f", "user.note") == b"hello"
    assert os.getxattr(dest / "f", "user.bin") == b"\xff\x00\x01"
    assert "user.overlay.opaque" not in os.listxattr(dest / "f")
    assert not [x for x in os.listxattr(dest / "d") if "overlay" in x]


def test_non_utf8_names_round_trip(dest: Path) -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    info, data = reg(name, b"1")
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, errors="surrogateescape"
    ) as tf:
        tf.addfile(info, io.BytesIO(data))
    apply(buf.getvalue(), dest)
    assert os.listdir(os.fsencode(dest)) == [b"caf\xe9"]


# --- whiteouts -------------------------------------------------------------------------------


def _lower(dest: Path) -> None:
    (dest / "etc/apt").mkdir(parents=True)
    (dest / "etc/apt/sources.list").write_text("deb")
    (dest / "etc/apt/sub").mkdir()
    (dest / "etc/apt/sub/old").write_text("old")
    (dest / "etc/gone").write_text("x")
    (dest / "etc/gonedir").mkdir()
    (dest / "etc/gonedir/f").write_text("x")


@pytest.mark.parametrize("marker_first", [True, False])
def test_vfs_whiteouts_delete_and_opaque_keeps_only_this_layer(
    dest: Path, marker_first: bool
) -> None:
    _lower(dest)
    opq = reg("etc/apt/.wh..wh..opq")
    layer = [dir_("etc/apt/"), dir_("etc/apt/sub/"), reg("etc/apt/sub/new", b"n"), reg("etc/apt/x")]
    layer = [opq, *layer] if marker_first else [*layer, opq]
    apply(tar_bytes(reg("etc/.wh.gone"), reg("etc/.wh.gonedir"), *layer), dest, whiteouts=VFS)
    assert sorted(os.listdir(dest / "etc")) == ["apt"]
    assert sorted(os.listdir(dest / "etc/apt")) == ["sub", "x"]
    assert os.listdir(dest / "etc/apt/sub") == ["new"]


def test_vfs_whiteout_of_something_missing_is_fine(dest: Path) -> None:
    apply(tar_bytes(reg("nothing/.wh.here"), reg(".wh.none")), dest, whiteouts=VFS)
    assert os.listdir(dest) == []


def test_overlay_whiteouts_become_devices_and_xattrs(dest: Path) -> None:
    try:
        os.setxattr(dest, "user.probe", b"1")
    except OSError:
        pytest.skip("the test directory's filesystem has no user xattrs")
    apply(
        tar_bytes(dir_("etc/"), reg("etc/.wh.passwd"), dir_("opq/"), reg("opq/.wh..wh..opq")),
        dest,
        whiteouts=OVERLAY,
    )
    st = (dest / "etc/passwd").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "opq", "user.overlay.opaque") == b"y"
    assert os.listdir(dest / "opq") == []


@pytest.mark.parametrize("name", ["d/.wh..", "d/.wh."])
def test_invalid_whiteout_names(dest: Path, name: str) -> None:
    with pytest.raises(StorageError, match="invalid whiteout"):
        apply(tar_bytes(reg(name)), dest)


def test_aufs_metadata_is_skipped(dest: Path) -> None:
    apply(tar_bytes(dir_(".wh..wh.plnk/"), reg(".wh..wh.plnk/1.2"), reg("f")), dest)
    assert os.listdir(dest) == ["f"]


# --- broken and hostile input (unprivileged part; the corpus runs as root) -------------------


def test_names_climbing_out_are_refused_and_absolute_ones_contained(dest: Path) -> None:
    with pytest.raises(StorageError, match=r"entry 'a/../../x'.*climbs out"):
        apply(tar_bytes(reg("a/../../x")), dest)
    apply(tar_bytes(reg("/abs", b"1"), reg("a/../b", b"2")), dest)
    assert (dest / "abs").read_bytes() == b"1"
    assert (dest / "b").read_bytes() == b"2"


def test_nothing_is_written_through_a_symlink(dest: Path) -> None:
    with pytest.raises(StorageError, match=r"entry 'l/f'.*l is a symlink"):
        apply(tar_bytes(sym("l", "d"), dir_("d/"), reg("l/f")), dest)
    assert not (dest / "d/f").exists()


def test_truncated_streams_are_errors(dest: Path) -> None:
    plain = tar_bytes(reg("f", os.urandom(5000)), reg("g", b"1"))
    with pytest.raises(StorageError, match="truncated|unexpected end"):
        apply(plain[:3000], dest)
    with pytest.raises(StorageError, match="truncated"):
        apply(plain[: 512 * 11 + 100], dest)  # in the middle of the second header
    with pytest.raises(StorageError, match="gzip stream is truncated"):
        apply(gzip.compress(plain)[:-20], dest)
    import zstandard

    with pytest.raises(StorageError, match="zstd stream is truncated"):
        apply(zstandard.ZstdCompressor().compress(plain)[:-10], dest)


def test_garbage_header_in_the_middle_is_an_error(dest: Path) -> None:
    plain = bytearray(tar_bytes(reg("f", b"1"), reg("g", b"2")))
    plain[1024:1036] = b"garbage!!!!!"  # the second header, its checksum now wrong
    with pytest.raises(StorageError, match="invalid header"):
        apply(bytes(plain), dest)


def test_huge_size_header_is_an_error(dest: Path) -> None:
    info, _ = reg("huge")
    info.size = 1 << 40
    header = info.tobuf(tarfile.PAX_FORMAT)
    with pytest.raises(StorageError, match=r"'huge'.*(unexpected end|truncated)"):
        apply(header + b"x" * 1000, dest)


def test_decompression_bomb_guard(dest: Path) -> None:
    bomb = gzip.compress(tar_bytes(reg("zeros", b"\0" * (8 << 20))), 9)
    assert len(bomb) < 64 << 10
    with pytest.raises(StorageError, match="larger than the limit"):
        apply(bomb, dest, max_size=1 << 20)


def test_not_a_tar(dest: Path) -> None:
    with pytest.raises(StorageError, match="invalid or truncated tar"):
        apply(b"hello, this is not a tar archive" * 40, dest)


def test_nul_bytes_and_absurd_depth_are_refused(dest: Path) -> None:
    info, data = reg("a")
    info.pax_headers = {"path": "a\0b"}
    with pytest.raises(StorageError, match="NUL byte"):
        apply(tar_bytes((info, data)), dest)
    with pytest.raises(StorageError, match="levels deep"):
        apply(tar_bytes(reg("d/" * 300 + "f")), dest)
    assert os.listdir(dest) == []


def test_unsupported_entry_type(dest: Path) -> None:
    with pytest.raises(StorageError, match=r"entry 'vol'.*unsupported"):
        apply(tar_bytes(entry("vol", b"V")), dest)


def test_hardlink_target_missing_or_outside(dest: Path) -> None:
    with pytest.raises(StorageError, match="not in the layer"):
        apply(tar_bytes(link("l", "missing")), dest)
    with pytest.raises(StorageError, match="climbs out"):
        apply(tar_bytes(link("l", "../../etc/passwd")), dest)


_PART = st.sampled_from(["a", "b", "..", ".", "", ".wh.a", ".wh..wh..opq", "c"])
_NAME = st.lists(_PART, min_size=1, max_size=5).map("/".join)
_KIND = st.sampled_from(["reg", "dir", "sym", "link"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(_KIND, _NAME, _NAME), min_size=1, max_size=8), st.booleans())
def test_property_nothing_lands_outside(
    tmp_path: Path, items: list[tuple[str, str, str]], absolute_links: bool
) -> None:
    import shutil
    import uuid

    box = tmp_path / uuid.uuid4().hex
    dest = box / "a" / "layer"
    dest.mkdir(parents=True)
    (box / "canary").write_text("canary")
    entries: list[Entry] = []
    for kind, name, target in items:
        if not name.strip("/."):
            continue
        if kind == "reg":
            entries.append(reg(name, b"data"))
        elif kind == "dir":
            entries.append(dir_(name))
        elif kind == "sym":
            entries.append(sym(name, ("/" if absolute_links else "../../") + target))
        else:
            entries.append(link(name, target))
    try:
        apply(tar_bytes(*entries), dest, whiteouts=VFS)
    except StorageError:
        pass
    assert sorted(p.name for p in box.iterdir()) == ["a", "canary"]
    assert os.listdir(box / "a") == ["layer"]
    assert (box / "canary").read_text() == "canary"
    shutil.rmtree(box)


# --- the fast path: header decoding, gzip back-ends, read-ahead, layouts --------------------
_HEADER_FIELDS = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=120),
        "mode": st.integers(0, 0o7777),
        "uid": st.integers(0, 2**21),
        "size": st.integers(0, 2**40),
        "mtime": st.integers(0, 2**33),
        "type": st.sampled_from([b"0", b"\0", b"1", b"2", b"3", b"5", b"7", b"S", b"x"]),
        "prefix": st.text(max_size=40),
    }
)


@settings(max_examples=300, deadline=None)
@given(_HEADER_FIELDS, st.integers(0, 511), st.binary(min_size=0, max_size=3), st.booleans())
def test_property_fast_header_decoding_is_tarfiles(
    fields: dict[str, object], at: int, junk: bytes, corrupt: bool
) -> None:
    """The fast header decoding gives tarfile's result (or tarfile's error) for valid headers,
    for headers with bytes changed, and for GNU base-256 numbers."""
    from pypod.storage.archive.tarread import LayerMember

    info = tarfile.TarInfo(str(fields["name"]))
    info.mode = int(fields["mode"])  # type: ignore[call-overload]
    info.uid = int(fields["uid"])  # type: ignore[call-overload]
    info.size = int(fields["size"])  # type: ignore[call-overload]
    info.mtime = int(fields["mtime"])  # type: ignore[call-overload]
    info.type = bytes(fields["type"])  # type: ignore[call-overload]
    try:
        block = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")[-512:]
    except ValueError:
        return
    if corrupt and junk:
        block = block[:at] + junk + block[at + len(junk) :]
        block = block[:512]
    outcomes: list[object] = []
    for cls in (tarfile.TarInfo, LayerMember):
        try:
            got = cls.frombuf(block, "utf-8", "surrogateescape")
            outcomes.append(
                (got.name, got.mode, got.uid, got.gid, got.size, got.mtime, got.type,
                 got.linkname, got.uname, got.devmajor, got.devminor,
                 getattr(got, "_sparse_structs", None))
            )  # fmt: skip
        except tarfile.HeaderError as e:
            outcomes.append((type(e), str(e)))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("backend", ["zlib", "isal"])
def test_gzip_backends_agree(dest: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    import pypod.storage.archive.stream as stream_module

    if backend == "isal":
        isal = pytest.importorskip("isal.isal_zlib", reason="the isal package is not installed")
        monkeypatch.setattr(stream_module, "_inflate_module", lambda: isal)
    else:
        monkeypatch.setattr(stream_module, "_inflate_module", lambda: zlib)
    plain = tar_bytes(*SIMPLE, reg("big", os.urandom(300_000)))
    blob = gzip.compress(plain[:1000]) + gzip.compress(plain[1000:]) + b"\0" * 10
    result = apply(blob, dest)
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    for name in ("x", "y"):
        (dest.parent / name).mkdir()
    member = gzip.compress(plain)
    bad_crc = member[:-8] + bytes([member[-8] ^ 1]) + member[-7:]
    with pytest.raises(StorageError, match="invalid gzip data"):
        apply(bad_crc, dest.parent / "x")
    with pytest.raises(StorageError, match="truncated"):
        apply(gzip.compress(plain)[:-9], dest.parent / "y")


def test_read_ahead_hands_errors_over_and_stops(dest: Path) -> None:
    """An error of the stream (a digest check at its end, a broken connection) reaches the
    caller as it is, from the reading thread."""
    from pypod.errors import RegistryError

    plain = tar_bytes(*SIMPLE, reg("big", os.urandom(3 << 20)))

    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.data = io.BytesIO(plain)

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            if self.data.tell() > len(plain) // 2:
                raise RegistryError("connection broken at half the blob")
            return self.data.read(n)

    with pytest.raises(RegistryError, match="connection broken"):
        apply_layer(Failing(), str(dest), rootless=True)  # type: ignore[arg-type]
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("pypod-layer")]


def test_layout_is_recorded_in_the_same_pass(dest: Path) -> None:
    from pypod.storage.archive.stream import LayoutRecorder

    data = tar_bytes(*SIMPLE, reg("big", b"x" * 5000), reg("empty")) + b"\0" * 2048
    layout = LayoutRecorder()
    apply_layer(io.BytesIO(gzip.compress(data)), str(dest), rootless=True, layout=layout)
    entries = layout.finish()
    assert [e[1:] for e in entries if e[1]] == [("etc/hostname", 4), ("big", 5000)]
    assert sum(e[0] for e in entries) == len(layout.raw) == len(data) - 5004
    rebuilt, pos = b"", 0
    for raw_len, name, _size in entries:
        rebuilt += layout.raw[pos : pos + raw_len]
        pos += raw_len
        if name:
            rebuilt += (dest / name).read_bytes()
    assert rebuilt == data
    small = LayoutRecorder(limit=100)
    (dest.parent / "again").mkdir()
    apply_layer(io.BytesIO(data), str(dest.parent / "again"), rootless=True, layout=small)
    assert not small.complete and small.raw == b""


class _Pieces:
    """A stream handing out its bytes in pieces of the given sizes (chunk boundaries
    anywhere: inside headers, PAX records, file contents)."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.pos, self.sizes = data, 0, sizes or [512]

    def read(self, n: int = -1) -> bytes:
        size = self.sizes[self.pos % len(self.sizes)] if self.pos < len(self.data) else 1
        out = self.data[self.pos : self.pos + size]
        self.pos += len(out)
        return out


def _entries_both_ways(data: bytes, sizes: list[int]) -> tuple[list[object], list[object]]:
    from pypod.storage.archive.stream import TarInput
    from pypod.storage.archive.tarread import LayerReader

    def describe(m: tarfile.TarInfo) -> tuple[object, ...]:
        return (m.name, m.type, m.size, m.mode, m.uid, m.gid, m.mtime, m.linkname, m.uname,
                m.gname, m.devmajor, m.devminor, m.offset, m.offset_data,
                dict(m.pax_headers), m.sparse)  # fmt: skip

    ours: list[object] = []
    try:
        reader = LayerReader(TarInput(_Pieces(data, sizes)))
        while (m := reader.next()) is not None:
            ours.append(describe(m))
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        ours.append(type(e))
    theirs: list[object] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            while (m := tf.next()) is not None:
                theirs.append(describe(m))
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        theirs.append(type(e))
    return ours, theirs


_PAX_KEYS = st.sampled_from(["mtime", "atime", "path", "linkpath", "size", "uid", "gname",
                             "SCHILY.xattr.user.k", "comment", "GNU.sparse.size",
                             "hdrcharset"])  # fmt: skip
_MEMBER = st.tuples(
    st.sampled_from(
        [
            tarfile.REGTYPE,
            tarfile.DIRTYPE,
            tarfile.SYMTYPE,
            tarfile.LNKTYPE,
            tarfile.CHRTYPE,
            tarfile.FIFOTYPE,
            tarfile.AREGTYPE,
        ]
    ),  # fmt: skip
    st.text(st.sampled_from("ab/é.\udcff"), min_size=1, max_size=160),
    st.binary(max_size=1500),
    st.dictionaries(
        _PAX_KEYS, st.text(st.sampled_from("0123456789.ab/"), max_size=8), max_size=3
    ),  # fmt: skip
    st.integers(0, 2**34),
)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(_MEMBER, max_size=5),
    st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
    st.lists(st.integers(1, 3000), min_size=1, max_size=4),
    st.one_of(st.none(), st.tuples(st.integers(0, 5000), st.integers(0, 255))),
)
def test_property_layer_reader_reads_what_tarfile_reads(
    members: list[tuple[bytes, str, bytes, dict[str, str], int]],
    fmt: int,
    sizes: list[int],
    damage: tuple[int, int] | None,
) -> None:
    """The entries (every attribute the apply uses) and the errors of `LayerReader` are
    tarfile's, whatever the format, PAX records, chunk boundaries, or a damaged byte."""
    buf = io.BytesIO()
    try:
        with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8",
                          errors="surrogateescape") as tf:  # fmt: skip
            for kind, name, data, pax, mtime in members:
                info = tarfile.TarInfo(name)
                info.type, info.mtime = kind, mtime
                if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                    info.linkname = name[::-1]
                if kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    info.size = len(data)
                if fmt == tarfile.PAX_FORMAT:
                    info.pax_headers = pax
                tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    except (ValueError, UnicodeError, tarfile.TarError):
        return  # not writable in this format
    data = buf.getvalue()
    if damage is not None and damage[0] < len(data):
        data = data[: damage[0]] + bytes([damage[1]]) + data[damage[0] + 1 :]
    ours, theirs = _entries_both_ways(data, sizes)
    assert ours == theirs
