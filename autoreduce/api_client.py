"""An HTTP client of the autoreduce API, for the ``autoreduce`` client commands.

It signs requests with an API token, or with an OAuth2 access token fetched from
``POST /api/v1/oauth/token`` (client credentials grant, RFC 6749 §4.4, the client authenticated
with HTTP Basic) and kept in memory until shortly before it expires; an access token the API
answers 401 to is fetched anew and the request sent once more. Every failure is an
:class:`ApiError` saying what went wrong in one line, never with a secret in it.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import requests
import sseclient

from autoreduce import __version__
from autoreduce.client_config import ClientCredentials, safe_url

TOKEN_PATH = "/api/v1/oauth/token"
TIMEOUT_S = 30.0
STREAM_READ_TIMEOUT_S = 60.0  # a log stream sends a keep-alive comment every 15 s
EXPIRY_MARGIN_S = 30.0  # an access token is renewed this long before it expires (at most)
MAX_DETAIL = 500
UPLOAD_BLOCK_BYTES = 1024 * 1024  # what one read of an uploaded file takes from disk
UPLOAD_TIMEOUT_S = 600.0  # the longest wait for the API's answer once a file is sent


class ApiError(Exception):
    """The API could not be used; ``str()`` is one line a person can act on."""


class ApiUnreachable(ApiError):
    """No answer from the API (connection refused, unknown host, timeout)."""


class NotAuthorised(ApiError):
    """401 or 403: no credentials, wrong ones, or not allowed."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ApiRefused(ApiError):
    """A 4xx other than 401 and 403: the request was wrong or conflicts with the state."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ServerFault(ApiError):
    """A 5xx: the API (or something it needs) failed."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 1] + "…"


def _os_reason(error: BaseException) -> str:
    """The operating system's words for a failed connection, found in the exception chain."""
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return "unknown host"
        if isinstance(current, OSError) and current.strerror:
            return str(current.strerror).lower()
        pending += [*current.args, getattr(current, "reason", None)]
        pending += [current.__cause__, current.__context__]
    return "the connection failed"


def problem_detail(response: requests.Response) -> str:
    """The ``detail`` of an RFC 9457 problem, or the status line when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"]:
        return _one_line(body["detail"])
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


@dataclass
class _AccessToken:
    value: str
    renew_at: float  # time.monotonic() after which it is fetched anew


class ClientCredentialsGrant:
    """Fetches OAuth2 access tokens with a client id and secret and caches one in memory."""

    def __init__(self, api_url: str, client_id: str, client_secret: str) -> None:
        self.token_url = api_url + TOKEN_PATH
        # RFC 6749 §2.3.1: the id and secret are form-encoded before the Basic encoding
        self._basic = requests.auth.HTTPBasicAuth(
            quote(client_id, safe=""), quote(client_secret, safe="")
        )
        self._token: _AccessToken | None = None

    def access_token(self, session: requests.Session) -> str:
        if self._token is None or time.monotonic() >= self._token.renew_at:
            self._token = self._fetch(session)
        return self._token.value

    def forget(self) -> None:
        """Drop the cached token (the API refused it): the next request fetches another."""
        self._token = None

    def _fetch(self, session: requests.Session) -> _AccessToken:
        try:
            response = session.post(
                self.token_url,
                data={"grant_type": "client_credentials"},
                auth=self._basic,
                headers={"Accept": "application/json"},
                timeout=TIMEOUT_S,
            )
        except requests.Timeout:
            raise ApiUnreachable(
                f"no answer from the API at {safe_url(self.token_url)} within {TIMEOUT_S:g} s"
            ) from None
        except requests.ConnectionError as error:
            raise ApiUnreachable(
                f"cannot reach the API at {safe_url(self.token_url)}: {_os_reason(error)}"
            ) from None
        if response.status_code != 200:
            raise NotAuthorised(
                f"the API refused the client credentials ({response.status_code}): "
                f"{problem_detail(response)}",
                response.status_code,
            )
        try:
            body = response.json()
            value, expires_in = str(body["access_token"]), float(body.get("expires_in", 0))
        except (ValueError, KeyError, TypeError):
            raise NotAuthorised(
                f"the token endpoint {safe_url(self.token_url)} answered no access token", 200
            ) from None
        margin = min(EXPIRY_MARGIN_S, expires_in / 10)
        return _AccessToken(value, time.monotonic() + max(expires_in - margin, 0.0))


class MultipartFile:
    """A ``multipart/form-data`` body of one file part, read from disk as it is sent.

    It has a length (so requests sends ``Content-Length``, not chunks) and is read a block at a
    time, so a file of any size is never held in memory; :meth:`seek` ``(0)`` starts it again
    for a resent request. The file's name is sent as browsers send it (UTF-8, with ``"``, CR
    and LF percent-encoded); the API keeps it for display only.
    """

    def __init__(self, path: Path, field: str = "file") -> None:
        self.path = path
        self.size_bytes = path.stat().st_size  # read no more than this, should the file grow
        boundary = f"autoreduce-{secrets.token_hex(16)}"
        self.content_type = f"multipart/form-data; boundary={boundary}"
        name = path.name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        self._head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode("utf-8", "surrogateescape")
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._file: IO[bytes] | None = None
        self._parts: list[IO[bytes]] = []
        self._left = 0
        self.digest = hashlib.sha256()  # of the file's bytes sent so far

    def __len__(self) -> int:
        return len(self._head) + self.size_bytes + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(UPLOAD_BLOCK_BYTES):
            yield chunk

    def seek(self, offset: int) -> None:
        """Start again from the beginning (``offset`` must be 0)."""
        if offset != 0:
            raise ValueError("a multipart body is only rewound to its start")
        self.close()
        self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self._parts = [io.BytesIO(self._head), self._file, io.BytesIO(self._tail)]
        self._left = self.size_bytes
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        if self._file is None:
            self.seek(0)
        wanted = UPLOAD_BLOCK_BYTES if size is None or size < 0 else size
        chunks: list[bytes] = []
        while wanted > 0 and self._parts:
            part = self._parts[0]
            limit = min(wanted, self._left) if part is self._file else wanted
            chunk = part.read(limit) if limit > 0 else b""
            if part is self._file:
                self._left -= len(chunk)
                self.digest.update(chunk)
            if not chunk:
                if part is self._file and self._left > 0:
                    raise OSError(f"{self.path} shrank while it was being sent")
                self._parts.pop(0)
                continue
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class LogEvent:
    """A log line (``seq``, ``text``) or, last, the run's final ``status`` and ``message``."""

    seq: int | None = None
    text: str = ""
    status: str = ""
    message: str = ""

    @property
    def is_end(self) -> bool:
        return bool(self.status)


class ApiClient:
    """The API at ``credentials.api_url``, signed in as the credentials say."""

    def __init__(self, credentials: ClientCredentials, timeout_s: float = TIMEOUT_S) -> None:
        self.credentials = credentials
        self.base_url = credentials.api_url
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"autoreduce-cli/{__version__}"
        self.grant = (
            ClientCredentialsGrant(self.base_url, credentials.client_id, credentials.client_secret)
            if credentials.client_id and not credentials.token
            else None
        )

    def close(self) -> None:
        self.session.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._json(self.send("GET", path, params=_present(params or {})))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(self.send("POST", path, json=body))

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(self.send("PATCH", path, json=body))

    def delete(self, path: str) -> None:
        self.send("DELETE", path)

    def upload(self, path: str, file: Path) -> Any:
        """POST ``file`` as the multipart field ``file``, streamed from disk; the API's JSON,
        checked to name the SHA-256 of the bytes that were sent."""
        body = MultipartFile(file)
        try:
            response = self.send(
                "POST",
                path,
                data=body,
                headers={"Content-Type": body.content_type},
                timeout=(self.timeout_s, UPLOAD_TIMEOUT_S),
            )
        finally:
            body.close()
        answer = self._json(response)
        sent = body.digest.hexdigest()
        if not isinstance(answer, dict) or answer.get("sha256") != sent:
            stored = answer.get("sha256") if isinstance(answer, dict) else None
            raise ServerFault(
                f"the API stored {file.name} with SHA-256 {stored}, not {sent} as sent",
                response.status_code,
            )
        return answer

    def text(self, path: str) -> str:
        return self.send("GET", path).text

    def follow_log(self, path: str) -> Iterator[LogEvent]:
        """The lines of a log stream as they come, then its end; a stream the API closes
        before the end (its time limit) is resumed after the last line with Last-Event-ID."""
        last_seq: int | None = None
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_seq is not None:
                headers["Last-Event-ID"] = str(last_seq)
            response = self.send(
                "GET",
                path,
                params={"follow": "true"},
                headers=headers,
                stream=True,
                timeout=(self.timeout_s, STREAM_READ_TIMEOUT_S),
            )
            with response:
                try:
                    for event in sseclient.SSEClient(response.iter_content(None)).events():
                        if event.event == "end":
                            ending = json.loads(event.data)
                            yield LogEvent(status=ending["status"], message=ending["message"])
                            return
                        if event.id:
                            last_seq = int(event.id)
                        yield LogEvent(seq=last_seq, text=event.data)
                except requests.RequestException as error:
                    raise ApiUnreachable(
                        f"the log stream from {safe_url(self.base_url)} broke: {_os_reason(error)}"
                    ) from None

    def send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
        **options: Any,
    ) -> requests.Response:
        """One request; an OAuth2 access token answered 401 is renewed and the request resent
        once. Raises :class:`ApiError` for no answer or any 4xx/5xx."""
        url = self.base_url + path
        for attempt in (1, 2):
            try:
                response = self.session.request(
                    method,
                    url,
                    headers={**(headers or {}), **self._authorisation()},
                    timeout=timeout or self.timeout_s,
                    **options,
                )
            except requests.Timeout:
                raise ApiUnreachable(
                    f"no answer from the API at {safe_url(url)} within {self.timeout_s:g} s"
                ) from None
            except requests.ConnectionError as error:
                raise ApiUnreachable(
                    f"cannot reach the API at {safe_url(url)}: {_os_reason(error)}"
                ) from None
            if response.status_code == 401 and self.grant is not None and attempt == 1:
                response.close()
                self.grant.forget()
                if isinstance(options.get("data"), MultipartFile):
                    options["data"].seek(0)  # a streamed body is sent again from its start
                continue
            break
        if response.status_code >= 400:
            raise self._failure(response)
        return response

    def _authorisation(self) -> dict[str, str]:
        if self.credentials.token:
            return {"Authorization": f"Bearer {self.credentials.token}"}
        if self.grant is not None:
            return {"Authorization": f"Bearer {self.grant.access_token(self.session)}"}
        return {}

    def _failure(self, response: requests.Response) -> ApiError:
        status, detail = response.status_code, problem_detail(response)
        response.close()
        if status == 401 and not self.credentials.signed_in:
            return NotAuthorised(
                f"not signed in: {detail} (run `autoreduce login`, or set AUTOREDUCE_API_TOKEN)",
                status,
            )
        if status in (401, 403):
            return NotAuthorised(f"{detail} (credentials from {self.credentials.source})", status)
        if status >= 500:
            return ServerFault(f"the API failed ({status}): {detail}", status)
        return ApiRefused(detail, status)

    @staticmethod
    def _json(response: requests.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ServerFault(
                f"the API at {safe_url(response.url)} answered something that is not JSON",
                response.status_code,
            ) from None


def _present(params: dict[str, Any]) -> dict[str, Any]:
    """The query parameters that were given (None means not given)."""
    return {name: value for name, value in params.items() if value is not None}


def path_part(value: str | int) -> str:
    """``value`` quoted as one path segment (an instrument name cannot add a segment)."""
    return quote(str(value), safe="")
