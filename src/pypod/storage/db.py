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
- sqlite3 is in the standard library; opening the database costs about a millisecond (the
  C module `_sqlite3`, see `pypod.sqlite`).

Durability: `synchronous=FULL`, so a commit is on disk before the files it allows to be removed
are removed.  Files named by a row (blobs, layer directories) are written before the row that
names them (an image's blobs, then its row: a crash in between leaves a directory that the
next start removes); layer rows that describe unfinished work carry `incomplete=1`.
"""

from __future__ import annotations

from pypod import sqlite
from pypod.errors import StorageError
from pypod.sqlite import sqlite3

#: 1: the first schema; 2: a container may have no image (`containers.image_id` NULL: a
#: `pypod-build from scratch` working container stands on no image and no layer)
SCHEMA_VERSION = 2

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
    image_id TEXT REFERENCES images(id),
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


#: what takes a database of version N-1 to version N: statements run in order, in one
#: transaction with the new `user_version`, foreign keys off (a table rebuild must not cascade)
#: and checked before the commit
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 2: `containers.image_id` loses NOT NULL (a container of no image).  SQLite cannot alter a
    # column's constraints: the table is rebuilt as SQLite's documentation prescribes (new
    # table, copy, drop, rename, indexes again)
    2: (
        """CREATE TABLE containers_v2 (
            id TEXT PRIMARY KEY,
            image_id TEXT REFERENCES images(id),
            layer_id TEXT NOT NULL UNIQUE REFERENCES layers(id),
            metadata TEXT NOT NULL,
            created REAL NOT NULL
        )""",
        "INSERT INTO containers_v2 (id, image_id, layer_id, metadata, created) "
        "SELECT id, image_id, layer_id, metadata, created FROM containers",
        "DROP TABLE containers",
        "ALTER TABLE containers_v2 RENAME TO containers",
        "CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id)",
    ),
}


def connect(path: str) -> sqlite3.Connection:
    """Open (creating when needed) the database, upgrading an older schema; autocommit mode,
    the store runs BEGIN."""
    db = sqlite.connect(path, _SCHEMA, SCHEMA_VERSION, what="storage database")
    if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        try:
            _migrate(db)
        except sqlite3.DatabaseError as e:
            db.close()
            raise StorageError(
                f"upgrade storage database {path} to version {SCHEMA_VERSION}: {e}; "
                "the database is unchanged"
            ) from e
        except BaseException:
            db.close()
            raise
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an older schema up to SCHEMA_VERSION in one transaction (all or nothing: a crash
    or a failure leaves the old schema, upgraded again on the next open)."""
    db.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set it before BEGIN
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            # read under the write lock: another process may have upgraded it meanwhile
            found = db.execute("PRAGMA user_version").fetchone()[0]
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS.get(version, ()):
                    db.execute(statement)
            if found < SCHEMA_VERSION:
                broken = db.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise sqlite3.IntegrityError(
                        f"{len(broken)} rows break foreign keys, first {tuple(broken[0])}"
                    )
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.execute("PRAGMA foreign_keys=ON")
