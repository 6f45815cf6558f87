from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CurrentUser, SessionDep
from services import auth
from services.schemas import LoginRequest, TokenPublic, UserPublic

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login")
def login(body: LoginRequest, session: SessionDep) -> TokenPublic:
    user = auth.authenticate(session, username=body.username, password=body.password)
    return TokenPublic(access_token=auth.issue_token(session, user=user))


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user.model_dump())
