"""The store: SQLAlchemy over SQLite (default) or PostgreSQL; the analysts' interface."""

from reelset.storage.records import Failure, Genre, LockHolder, MovieRecord, UpsertResult
from reelset.storage.store import Store, head_version

__all__ = ["Failure", "Genre", "LockHolder", "MovieRecord", "Store", "UpsertResult", "head_version"]
