"""A cap on request bodies, applied before Gradio reads them.

The page sends small JSON (slider values, choices; photos go to the upload route, capped
by Gradio's max_file_size). Without a cap a 60 MB JSON body to the queue endpoint was
accepted whole, and Gradio's error for it printed the payload into the server log.
"""
from __future__ import annotations

from facevae.web.upload import MAX_UPLOAD_BYTES

MAX_JSON_BYTES = 64 * 1024  # a full set of 40 slider values is under 2 kB
MAX_UPLOAD_BODY_BYTES = MAX_UPLOAD_BYTES + 64 * 1024  # the photo plus its multipart framing


class BodyLimit:
    """ASGI middleware: 413 for a declared Content-Length over the limit; a body that grows past it
    unannounced (chunked) reaches the app as a client disconnect, so it is never read whole."""

    def __init__(self, app, max_bytes: int = MAX_JSON_BYTES, upload_bytes: int = MAX_UPLOAD_BODY_BYTES):
        self.app, self.max_bytes, self.upload_bytes = app, max_bytes, upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_bytes if scope["path"].rstrip("/").endswith("/upload") else self.max_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _too_large(send, limit)
        received = 0

        async def capped_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    return {"type": "http.disconnect"}
            return message

        return await self.app(scope, capped_receive, send)


async def _too_large(send, limit: int) -> None:
    body = f"request body over {limit} bytes\n".encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
