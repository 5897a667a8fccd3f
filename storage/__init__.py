"""Image storage in MongoDB GridFS. No Ray here."""

from storage.gridfs_store import FileGone, ImageStore, StoredFile, content_id, mongo_client

__all__ = ["FileGone", "ImageStore", "StoredFile", "content_id", "mongo_client"]
