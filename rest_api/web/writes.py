"""What every page that writes needs: the submitted form, and the API's role check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import FormData

from rest_api.auth import Caller
from rest_api.web.session import SignInRequired


async def submitted_form(request: Request) -> FormData:
    """The request's form fields (read once; Starlette keeps them for later readers)."""
    return await request.form()


FormDep = Annotated[FormData, Depends(submitted_form)]


def require_page_role(request: Request, caller: Caller, *roles: str) -> None:
    """Refuse a write as the API would: anonymous → sign in first; another role → 403."""
    if caller.role == "public":
        raise SignInRequired(request.url.path)
    if caller.role not in roles:
        raise HTTPException(
            status_code=403,
            detail=f"{caller.name!r} has role {caller.role!r}; this needs {' or '.join(roles)}",
        )


def form_text(form: FormData, name: str) -> str:
    """A text field of ``form`` ('' if absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""
