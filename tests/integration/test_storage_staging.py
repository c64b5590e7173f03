"""Layers staged ahead of their parents (a pull applies all of an image's layers at once), and
the tar layouts recorded in the same pass: as root, on this kernel's overlayfs."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable

import pytest

from pypod.errors import LayerNotFound, NotSupported
from pypod.storage.store import Store, chain_id
from pypod.storage.tarsplit import DIRECTORY, layout_path
from tests.integration.test_storage_store import (
    TarBuilder,
    _big_layer,
    _Stalling,
    layer1,
    layer2,
    layer3,
    make_store,
    put_image,
    tree,
)
from tests.storage_support import killed_child

pytestmark = pytest.mark.root

__all__ = ["make_store"]  # the fixture, used by name


def _layouts(store: Store) -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(store.graphroot, DIRECTORY)))
    except FileNotFoundError:
        return []


def test_staged_layers_are_invisible_until_committed(make_store: Callable[..., Store]) -> None:
    store = make_store()
    staged = [store.stage_layer(io.BytesIO(blob)) for blob in (layer3(), layer2(), layer1())]
    assert store.layers() == []  # nothing to see while staged (rows are incomplete)
    top: str | None = None
    for layer in reversed(staged):  # bottom-up, in any order they were staged
        stored, new = store.commit_staged(layer, top)
        assert new and stored.id == chain_id(top, layer.diff_id) and stored.parent == top
        top = stored.id
    # the same files as layers applied one after the other on their parents
    other = make_store(name="sequential")
    image = put_image(other, [layer1(), layer2(), layer3()], ["seq"])
    assert [x.id for x in store.chain(top)] == [x.id for x in other.chain(image.top_layer)]
    mounted = store.driver.mount(top or "")
    try:
        expected = other.driver.mount(image.top_layer)
        try:
            assert tree(mounted) == tree(expected)
        finally:
            other.driver.unmount(image.top_layer)
    finally:
        store.driver.unmount(top or "")
    # each layer's tar comes back byte for byte from its recorded layout
    for blob, layer in zip((layer1(), layer2(), layer3()), store.chain(top)[::-1], strict=True):
        out = io.BytesIO()
        assert store.layer_tar(layer, out) == layer.diff_id
        assert out.getvalue() == blob


def test_dropped_and_unclaimed_staged_layers_go(
    make_store: Callable[..., Store],
) -> None:
    store = make_store()
    first = store.stage_layer(io.BytesIO(gzip.compress(layer1())))
    assert (
        first.compressed_digest != first.diff_id and first.compressed_size < first.uncompressed_size
    )
    store.stage_layer(io.BytesIO(layer2()))
    assert len(store.driver.layer_ids()) == 2 and len(_layouts(store)) == 2
    store.drop_staged(first)
    with pytest.raises(LayerNotFound):
        store.commit_staged(first, None)  # dropped: gone
    store.close()  # what is still staged goes with the store
    fresh = make_store()
    assert fresh._q("SELECT COUNT(*) FROM layers")[0][0] == 0
    assert fresh.driver.layer_ids() == [] and _layouts(fresh) == []
    assert os.listdir(os.path.join(fresh.runroot, "locks")) == []


def test_commit_reuses_a_layer_stored_meanwhile(make_store: Callable[..., Store]) -> None:
    store = make_store()
    staged = store.stage_layer(io.BytesIO(layer1()))
    existing = store.put_layer(None, io.BytesIO(layer1()))
    layer, new = store.commit_staged(staged, None)
    assert layer == existing and not new
    assert store.driver.layer_ids() == [existing.id]
    assert _layouts(store) == [f"{existing.id}.gz"]


def test_vfs_stages_nothing(make_store: Callable[..., Store]) -> None:
    store = make_store("vfs")
    assert not store.stages_layers
    with pytest.raises(NotSupported):
        store.stage_layer(io.BytesIO(layer1()))
    # put_layer records the layout in the same pass there too
    layer = store.put_layer(None, io.BytesIO(layer1()))
    assert os.path.exists(layout_path(store.graphroot, layer.id))


def test_layout_rebuilds_odd_tars_exactly(make_store: Callable[..., Store]) -> None:
    """PAX and GNU long names, a hardlink, empty files, content that is all padding, bytes
    after the end blocks: the rebuilt tar is the same bytes.  A tar whose files changed on
    the way (one written twice) cannot come back: a new tar of the files is made."""
    store = make_store()
    long_dir = "d" * 120
    blob = (
        TarBuilder()
        .dir(long_dir)
        .file(f"{long_dir}/{'f' * 150}", b"long name")
        .file("empty", b"")
        .file("block", b"\0" * 1024)
        .hardlink("link", "block")
        .bytes()
    ) + b"\0" * 4096
    gnu = io.BytesIO()
    with tarfile.open(fileobj=gnu, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("g" * 200)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"gnu"))
    for data in (blob, gnu.getvalue()):
        layer = store.put_layer(None, io.BytesIO(data))
        out = io.BytesIO()
        assert store.layer_tar(layer, out) == layer.diff_id
        assert out.getvalue() == data
    twice = TarBuilder().file("twice", b"first").file("twice", b"second").bytes()
    layer = store.put_layer(None, io.BytesIO(twice))
    out = io.BytesIO()
    new_diff_id = store.layer_tar(layer, out)
    assert new_diff_id != layer.diff_id
    again = make_store(name="again").put_layer(None, io.BytesIO(out.getvalue()))
    assert again.diff_id == new_diff_id


def test_sigkill_mid_stage_leaves_a_clean_store(make_store: Callable[..., Store]) -> None:
    store = make_store()
    big = _big_layer()
    graph, run = store.graphroot, store.runroot

    def child(ready: int) -> None:
        mine = Store(graph, run)
        mine.stage_layer(io.BytesIO(gzip.compress(layer1())))  # complete, not committed
        mine.stage_layer(_Stalling(big, len(big) // 2, ready))  # type: ignore[arg-type]

    killed_child(child)
    assert len(store.driver.layer_ids()) == 2 and len(_layouts(store)) == 1
    fresh = Store.open(graph, run)
    try:
        assert fresh._q("SELECT COUNT(*) FROM layers")[0][0] == 0
        assert fresh.driver.layer_ids() == [] and _layouts(fresh) == []
        assert os.listdir(os.path.join(run, "locks")) == []
        staged = fresh.stage_layer(io.BytesIO(big))  # and it works again
        assert fresh.commit_staged(staged, None)[1]
    finally:
        fresh.close()


def test_a_live_staging_process_is_left_alone(make_store: Callable[..., Store]) -> None:
    """Another command opening the store while a layer is being staged does not remove it."""
    store = make_store()
    staged = store.stage_layer(io.BytesIO(layer1()))
    other = Store.open(store.graphroot, store.runroot)
    try:
        assert staged.id in other.driver.layer_ids()
    finally:
        other.close()
    assert store.commit_staged(staged, None)[1]
