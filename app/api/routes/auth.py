"""Sign-up, sign-in, token refresh, sign-out, password change/reset, profile and personal tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import ClientIp, CurrentUser, PathId, SessionDep
from services.domain import auth, tokens
from services.domain.schemas import LoginRequest, UserPublic
from services.domain.security_schemas import (
    LogoutRequest,
    PasswordChange,
    PasswordReset,
    PersonalTokenCreate,
    PersonalTokenCreated,
    PersonalTokenPublic,
    ProfileUpdate,
    RefreshRequest,
    SignupRequest,
    TokenPairPublic,
)

router = APIRouter(prefix="/auth", tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store"}


def _pair(response: Response, pair: tokens.TokenPair) -> TokenPairPublic:
    response.headers.update(_NO_STORE)
    return TokenPairPublic(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/login", responses={401: {}, 429: {}})
def login(body: LoginRequest, session: SessionDep, ip: ClientIp, response: Response) -> TokenPairPublic:
    """A short-lived JWT access token and a single-use refresh token. Locked out after repeated failures."""
    user = auth.authenticate(session, username=body.username, password=body.password, source_ip=ip)
    return _pair(response, tokens.issue_pair(session, user=user))


@router.post("/refresh", responses={401: {}})
def refresh(body: RefreshRequest, session: SessionDep, response: Response) -> TokenPairPublic:
    """Rotate: the old refresh token is spent; using it again signs out its whole family."""
    return _pair(response, tokens.rotate(session, refresh_token=body.refresh_token))


@router.post("/logout", status_code=204)
def logout(body: LogoutRequest, session: SessionDep, user: CurrentUser) -> None:
    """End this sign-in: its refresh family (and the access tokens naming it) stop working."""
    if body.refresh_token:
        tokens.revoke_refresh(session, refresh_token=body.refresh_token, user=user)


@router.post("/signup", status_code=201, responses={403: {}, 409: {}, 429: {}})
def signup(body: SignupRequest, session: SessionDep, ip: ClientIp) -> UserPublic:
    user = auth.sign_up(
        session, username=body.username, password=body.password, email=body.email, source_ip=ip
    )
    return UserPublic.model_validate(user.model_dump())


@router.post("/password", status_code=204, responses={401: {}})
def change_password(body: PasswordChange, session: SessionDep, user: CurrentUser) -> None:
    """Also signs out every session and refresh family of the account."""
    auth.change_password(
        session, user=user, current_password=body.current_password, new_password=body.new_password
    )


@router.post("/password-reset", status_code=204, responses={401: {}})
def reset_password(body: PasswordReset, session: SessionDep) -> None:
    """Set a new password with a single-use reset token from a platform admin."""
    auth.reset_password(session, token=body.token, new_password=body.new_password)


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user.model_dump())


@router.patch("/me")
def update_me(body: ProfileUpdate, session: SessionDep, user: CurrentUser) -> UserPublic:
    """Initials and badge colour; a colour too light for white initials (WCAG AA) is refused."""
    user = auth.update_profile(session, user=user, avatar_name=body.avatar_name, badge_color=body.badge_color)
    return UserPublic.model_validate(user.model_dump())


@router.get("/tokens")
def list_tokens(session: SessionDep, user: CurrentUser) -> list[PersonalTokenPublic]:
    return [PersonalTokenPublic.of(t) for t in tokens.list_personal_tokens(session, user=user)]


@router.post("/tokens", status_code=201)
def create_token(
    body: PersonalTokenCreate, session: SessionDep, user: CurrentUser, response: Response
) -> PersonalTokenCreated:
    """A personal API token for scripts and CI; the secret is in this answer only."""
    row, secret = tokens.create_personal_token(
        session, user=user, name=body.name, expires_in_days=body.expires_in_days
    )
    response.headers.update(_NO_STORE)
    return PersonalTokenCreated(**PersonalTokenPublic.of(row).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: PathId, session: SessionDep, user: CurrentUser) -> None:
    tokens.revoke_personal_token(session, user=user, token_id=token_id)
