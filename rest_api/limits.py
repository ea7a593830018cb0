"""Request bodies larger than the configured limit are refused before anything reads them.

:class:`BodySizeLimit` is plain ASGI middleware in front of everything (authentication
included): a declared ``Content-Length`` over the limit is answered 413 at once; a body sent
without one (chunked) is read up to the limit and refused as soon as it passes it. Memory held
for one request is therefore bounded by the limit, whatever the client sends.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest_api.problems import problem_response


class BodySizeLimit:
    """Answer 413 to any request whose body is over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, own_limit_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.own_limit_paths = own_limit_paths  # their routes stream the body and limit it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.own_limit_paths:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        chunks: list[Message] = []
        size = 0
        while True:  # no Content-Length: buffer what is sent, never more than the limit
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            f"the request body is larger than the limit of {self.max_bytes} bytes "
            "(setting max_request_bytes)",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
