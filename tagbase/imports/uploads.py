"""The size limit of an uploaded import file, enforced before and while the body is read.

Two checks, both against ``settings.TAGBASE_IMPORT_MAX_BYTES``:

1. ``declared_too_large``: the request's ``Content-Length`` already says the body is larger than
   the limit plus the little the other form fields and the multipart framing take, so the view
   answers 413 without reading the body at all.
2. ``SizeLimitUploadHandler``, installed first for the upload view only: it counts the file's
   bytes as they stream in and skips the file (Django closes, and so deletes, the temporary file
   it was writing) as soon as it passes the limit. A body whose ``Content-Length`` was honest
   cannot pass check 1 by more than the overhead, so the rest is at most that much to read;
   the other fields are still parsed and the form keeps the user's choices.

``services.store_upload`` checks the limit a third time while it copies the file, so no entry
point depends on this module for correctness. ``discard_uploads`` closes (and so deletes) every
temporary file the handlers opened when reading the body failed half way (the client went
away), instead of waiting for the garbage collector.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest

# Room for the other form fields, boundaries and part headers around the file.
MULTIPART_OVERHEAD = 64 * 1024


def max_bytes() -> int:
    return int(settings.TAGBASE_IMPORT_MAX_BYTES)


def declared_length(request: HttpRequest) -> int:
    """The body size the client announced (0 when absent or not a number)."""
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def declared_too_large(request: HttpRequest) -> bool:
    return declared_length(request) > max_bytes() + MULTIPART_OVERHEAD


class SizeLimitUploadHandler(FileUploadHandler):
    """Passes file data on to the next handlers until the files together pass the limit, then
    skips the file and remembers it in ``exceeded``. Stores nothing itself (and so has no
    ``file`` attribute: Django closes the ``file`` of every handler when a file is skipped)."""

    def __init__(self, request: HttpRequest | None = None, limit: int | None = None) -> None:
        super().__init__(request)
        self.limit = max_bytes() if limit is None else limit
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (memory or temporary file) returns the file


def install(request: HttpRequest) -> SizeLimitUploadHandler:
    """Put the limit in front of Django's handlers. Must run before ``request.POST`` or
    ``request.FILES`` is read, so the view using it is csrf_exempt with an inner csrf_protect
    (the CSRF check reads ``request.POST``)."""
    handler = SizeLimitUploadHandler(request)
    request.upload_handlers.insert(0, handler)
    return handler


def discard_uploads(request: HttpRequest) -> None:
    """Close every file the upload handlers opened; a temporary upload file is deleted when it
    is closed."""
    for handler in request.upload_handlers:
        opened = getattr(handler, "file", None)
        if opened is not None:
            opened.close()
