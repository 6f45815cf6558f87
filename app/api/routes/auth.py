"""Sign-up, sign-in, token refresh, sign-out, password change/reset, profile and personal tokens.

Parse, call services.actions.accounts with the caller, shape.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import AnonymousActor, CurrentActor, PathId
from services.actions import accounts
from services.domain import tokens
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
def login(body: LoginRequest, actor: AnonymousActor, response: Response) -> TokenPairPublic:
    """A short-lived JWT access token and a single-use refresh token. Locked out after repeated failures."""
    return _pair(response, accounts.sign_in_api(actor, username=body.username, password=body.password))


@router.post("/refresh", responses={401: {}})
def refresh(body: RefreshRequest, actor: AnonymousActor, response: Response) -> TokenPairPublic:
    """Rotate: the old refresh token is spent; using it again signs out its whole family."""
    return _pair(response, accounts.refresh(actor, refresh_token=body.refresh_token))


@router.post("/logout", status_code=204)
def logout(body: LogoutRequest, actor: CurrentActor) -> None:
    """End this sign-in: its refresh family (and the access tokens naming it) stop working."""
    accounts.sign_out(actor, refresh_token=body.refresh_token)


@router.post("/signup", status_code=201, responses={403: {}, 409: {}, 429: {}})
def signup(body: SignupRequest, actor: AnonymousActor) -> UserPublic:
    return accounts.sign_up(actor, username=body.username, password=body.password, email=body.email)


@router.post("/password", status_code=204, responses={401: {}})
def change_password(body: PasswordChange, actor: CurrentActor) -> None:
    """Also signs out every session and refresh family of the account."""
    accounts.change_password(actor, current_password=body.current_password, new_password=body.new_password)


@router.post("/password-reset", status_code=204, responses={401: {}})
def reset_password(body: PasswordReset, actor: AnonymousActor) -> None:
    """Set a new password with a single-use reset token from a platform admin."""
    accounts.reset_password(actor, token=body.token, new_password=body.new_password)


@router.get("/me")
def me(actor: CurrentActor) -> UserPublic:
    return accounts.me(actor)


@router.patch("/me")
def update_me(body: ProfileUpdate, actor: CurrentActor) -> UserPublic:
    """Initials and badge colour; a colour too light for white initials (WCAG AA) is refused."""
    return accounts.update_profile(actor, avatar_name=body.avatar_name, badge_color=body.badge_color)


@router.get("/tokens")
def list_tokens(actor: CurrentActor) -> list[PersonalTokenPublic]:
    return accounts.list_tokens(actor)


@router.post("/tokens", status_code=201)
def create_token(body: PersonalTokenCreate, actor: CurrentActor, response: Response) -> PersonalTokenCreated:
    """A personal API token for scripts and CI; the secret is in this answer only."""
    created = accounts.create_token(actor, name=body.name, expires_in_days=body.expires_in_days)
    response.headers.update(_NO_STORE)
    return created


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: PathId, actor: CurrentActor) -> None:
    accounts.revoke_token(actor, token_id=token_id)
