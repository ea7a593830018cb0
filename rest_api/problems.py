"""Every error is an RFC 9457 problem: ``application/problem+json``, declared for every route.

A problem has ``type``, ``title``, ``status`` and a one-line ``detail`` a person can act on; a
request that fails validation adds ``errors``, one per field, each naming where (``loc``) and
what was wrong (``msg``). Routes declare the statuses they can answer with :func:`problems`;
:func:`problem_openapi` rewrites the generated document so that every 4xx/5xx answer points at
the one :class:`Problem` schema with the right media type (FastAPI would declare
``application/json`` and its own validation-error shape, which is not what is sent).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from autoreduce.state_machine import one_line

logger = logging.getLogger("autoreduce.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
OWN_ERROR_SHAPE = "x-own-error-shape"
"""A key of a route's ``responses`` entry: this error answer is not a problem (OAuth's errors)."""
DESCRIPTIONS = {
    400: "The request is malformed (bad search syntax, bad JSON).",
    401: "No credentials, or unknown, expired or revoked ones.",
    403: "The caller's role or instruments do not allow this.",
    404: "No such resource.",
    405: "The method is not allowed on this path.",
    410: "Removed on purpose: a run's log, by the retention clean-up (the run itself remains).",
    409: "The request conflicts with the current state (e.g. the data file is not there yet).",
    413: "The request body is larger than the configured limit.",
    415: "The body is not JSON.",
    422: "A field or parameter is invalid or unknown; `errors` names each.",
    503: "The database is unavailable; try again later.",
}


class FieldError(BaseModel):
    """What was wrong with one field or parameter of the request."""

    loc: list[str | int] = Field(description="Where: `body`, `query` or `path`, then the name.")
    msg: str = Field(description="What was wrong, in words.")
    type: str = Field(description="A machine-readable kind of error.")


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str = Field(description="The HTTP status phrase.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong, in one line a person can act on.")
    errors: list[FieldError] | None = Field(None, description="Per-field errors (422 only).")


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response for ``status`` with the one-line ``detail``."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": "about:blank",  # RFC 9457 §4.2.1: the status says all there is to say
        "title": phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(
        jsonable_encoder(body), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may answer these error statuses."""
    return {status: {"description": DESCRIPTIONS[status]} for status in statuses}


def _field_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in e.get("loc", ())],
            "msg": one_line(str(e.get("msg", "")), 300),
            "type": str(e.get("type", "")),
        }
        for e in error.errors()
    ]


def _validation_problem(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = _field_errors(error)
    detail = "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'request'}: {e['msg']}" for e in errors
    )
    return problem_response(422, one_line(detail or "invalid request", 1000), errors=errors)


def _http_problem(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    headers = dict(error.headers) if error.headers else None
    return problem_response(error.status_code, detail, headers=headers)


def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    logger.error(
        "database unavailable during %s %s: %s",
        request.method,
        request.url.path,
        one_line(str(error), 300),
    )
    return problem_response(503, "the database is unavailable; try again later")


def _server_fault(request: Request, error: Exception) -> JSONResponse:
    logger.error("unexpected error in %s %s", request.method, request.url.path, exc_info=error)
    return problem_response(500, "internal server error; the service log has the details")


def install_problem_handlers(
    app: FastAPI,
    pages: tuple[Callable[[Request], bool], Callable[[Request, int, str], Response]] | None = None,
) -> None:
    """Answer every error the app raises as a problem; with ``pages`` (a test of whether a request
    is a person's page request, and how to render an error page for it), pages get HTML."""

    def handled(
        handler: Callable[[Request, Exception], JSONResponse],
    ) -> Callable[[Request, Exception], Response]:
        def answer(request: Request, error: Exception) -> Response:
            response = handler(request, error)
            if pages is None or not pages[0](request):
                return response
            body = json.loads(bytes(response.body))
            page = pages[1](request, response.status_code, str(body.get("detail", "")))
            for name in ("www-authenticate", "retry-after"):
                if name in response.headers:
                    page.headers[name] = response.headers[name]
            return page

        return answer

    app.add_exception_handler(RequestValidationError, handled(_validation_problem))
    app.add_exception_handler(StarletteHTTPException, handled(_http_problem))
    app.add_exception_handler(OperationalError, handled(_database_unavailable))
    app.add_exception_handler(Exception, handled(_server_fault))


def _problem_content(status: str) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS.get(int(status), HTTPStatus(int(status)).phrase),
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def problem_openapi(app: FastAPI, *, every_route: tuple[int, ...]) -> Callable[[], dict[str, Any]]:
    """An ``app.openapi`` that declares problems: ``every_route`` statuses on each operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem_schema.pop("$defs", {}))
        schemas["Problem"] = problem_schema
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status in every_route:
                    responses.setdefault(str(status), {})
                for status in list(responses):
                    if responses[status].pop(OWN_ERROR_SHAPE, False):
                        continue
                    if status[0] in "45":
                        responses[status] = _problem_content(status)
        app.openapi_schema = document
        return document

    return openapi
