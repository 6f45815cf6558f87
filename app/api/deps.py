"""Request dependencies: database session and the signed-in user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header
from sqlmodel import Session

from services import auth
from services.db import session_scope
from services.errors import Unauthorized
from services.models import User


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def current_user(session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> User:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("Send 'Authorization: Bearer <token>' (get one from POST /api/v1/auth/login)")
    return auth.user_for_token(session, authorization.split(" ", 1)[1].strip())


CurrentUser = Annotated[User, Depends(current_user)]
