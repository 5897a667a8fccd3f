"""Image storage in MongoDB GridFS. No Ray here."""

from storage.gridfs_store import ImageStore, StoredFile, content_id, mongo_client

__all__ = ["ImageStore", "StoredFile", "content_id", "mongo_client"]
