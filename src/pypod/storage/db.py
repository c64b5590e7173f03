"""The metadata database: one SQLite file in WAL mode, `<graphroot>/storage.db`.

Why SQLite rather than containers/storage's JSON files (layers.json, images.json,
containers.json, each rewritten whole through a temporary file and a rename):

- one change often touches several kinds of rows: deleting an image frees its layers, creating a
  container adds a layer and a container, retagging moves a name from one image to another.  A
  transaction makes each of these all-or-nothing; with three JSON files a crash between two
  renames leaves them disagreeing, and every reader must be written to cope;
- writes cost what they change, not the size of the store (a JSON store rewrites and fsyncs
  every image to add one name), and lookups by name or digest use indexes;
- WAL lets readers (`pypod images`, `ps`) read a consistent snapshot without any lock while a
  pull writes; writers are serialised by the store lock (`storage.locks`) anyway;
- sqlite3 is in the standard library; opening the database costs about a millisecond.

Durability: `synchronous=FULL`, so a commit is on disk before the files it allows to be removed
are removed.  Files named by a row (blobs, layer directories) are written before the row that
names them (an image's blobs, then its row: a crash in between leaves a directory that the
next start removes); layer rows that describe unfinished work carry `incomplete=1`.
"""

from __future__ import annotations

import sqlite3

from pypod import sqlite

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    id TEXT PRIMARY KEY,
    parent TEXT REFERENCES layers(id),
    diff_id TEXT,
    compressed_digest TEXT,
    compressed_size INTEGER,
    uncompressed_size INTEGER,
    created REAL NOT NULL,
    incomplete INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS layers_parent ON layers(parent);
CREATE INDEX IF NOT EXISTS layers_compressed ON layers(compressed_digest);
CREATE INDEX IF NOT EXISTS layers_diff ON layers(diff_id);

CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    manifest_media_type TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    top_layer TEXT REFERENCES layers(id),
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_top ON images(top_layer);

CREATE TABLE IF NOT EXISTS image_names (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS image_names_image ON image_names(image_id);

CREATE TABLE IF NOT EXISTS image_digests (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE INDEX IF NOT EXISTS image_digests_digest ON image_digests(digest);

CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id),
    layer_id TEXT NOT NULL UNIQUE REFERENCES layers(id),
    metadata TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id);

CREATE TABLE IF NOT EXISTS container_names (
    name TEXT PRIMARY KEY,
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS container_names_container ON container_names(container_id);
"""


def connect(path: str) -> sqlite3.Connection:
    """Open (creating when needed) the database; autocommit mode, the store runs BEGIN."""
    return sqlite.connect(path, _SCHEMA, SCHEMA_VERSION, what="storage database")
