"""nftables through libnftables, the library `nft` itself is built on: no process per change.

`nft -j ...` costs a fork and an exec (~2 ms each time) and, in Python, the `subprocess`
module (~5 ms of imports); bridge networking runs it on every container start and stop.
libnftables (Debian's libnftables1, which the nftables package depends on) takes the same
input — a command line or a JSON document — and gives the same output and error text.

`run(text)` is None when the library cannot be loaded: callers then run `nft`.
"""

from __future__ import annotations

import ctypes

__all__ = ["run"]

#: nft_ctx_output_set_flags: NFT_CTX_OUTPUT_JSON (`nft -j`)
_OUTPUT_JSON = 1 << 4
_LIBRARY = "libnftables.so.1"

_lib: ctypes.CDLL | None = None
_tried = False


def _load() -> ctypes.CDLL | None:
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    try:
        lib = ctypes.CDLL(_LIBRARY)
    except OSError:
        return None
    ptr, text, uint = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint
    lib.nft_ctx_new.argtypes, lib.nft_ctx_new.restype = [uint], ptr
    lib.nft_ctx_free.argtypes, lib.nft_ctx_free.restype = [ptr], None
    lib.nft_ctx_output_set_flags.argtypes, lib.nft_ctx_output_set_flags.restype = [ptr, uint], None
    lib.nft_ctx_buffer_output.argtypes, lib.nft_ctx_buffer_output.restype = [ptr], ctypes.c_int
    lib.nft_ctx_buffer_error.argtypes, lib.nft_ctx_buffer_error.restype = [ptr], ctypes.c_int
    lib.nft_ctx_get_output_buffer.argtypes, lib.nft_ctx_get_output_buffer.restype = [ptr], text
    lib.nft_ctx_get_error_buffer.argtypes, lib.nft_ctx_get_error_buffer.restype = [ptr], text
    lib.nft_run_cmd_from_buffer.argtypes = [ptr, text]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    _lib = lib
    return lib


def run(text: str) -> tuple[int, str, str] | None:
    """Run `text` (nft commands, or a JSON document `{"nftables": [...]}`) as `nft -j` would,
    in this process's network namespace: (0 or an error code, output, error text); None
    when libnftables is not there."""
    lib = _load()
    if lib is None:
        return None
    ctx = lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT
    if not ctx:
        return None
    try:
        lib.nft_ctx_output_set_flags(ctx, _OUTPUT_JSON)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        rc = lib.nft_run_cmd_from_buffer(ctx, text.encode())
        out = lib.nft_ctx_get_output_buffer(ctx) or b""
        err = lib.nft_ctx_get_error_buffer(ctx) or b""
        return rc, out.decode(errors="replace"), err.decode(errors="replace")
    finally:
        lib.nft_ctx_free(ctx)
