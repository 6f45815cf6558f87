"""Accounts as their owners act on them: sign-in, sign-out, sign-up, single sign-on, passwords,
profile and personal API tokens. One function per action; the REST API and the web UI call the same.

Sign-in is one action (`auth.login`) whichever credential it ends in: the web UI gets an opaque
session token, the REST API a JWT access token with a rotating refresh token. A refused sign-in is
audited with its reason ("locked out", "wrong password", "account deactivated") and counted by the
rate limiter (services.domain.auth.authenticate), whichever channel it came through.

Anonymous actions (signing in or up, redeeming a reset token) name the account they end in as the
audit row's actor once it is known: `op.user` is set to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.actions.core import Actor, Audit, Operation, operation
from services.domain import auth, oidc, tokens
from services.domain.models import User
from services.domain.schemas import UserPublic
from services.domain.security_schemas import PersonalTokenCreated, PersonalTokenPublic
from services.infra.db import session_scope
from services.infra.settings import get_settings


def user_public(user: User) -> UserPublic:
    return UserPublic.model_validate(user.model_dump())


def _acting_as(op: Operation, user: User) -> None:
    """From here on the (anonymous) operation acts as `user`: its audit row names them."""
    op.user = user
    op.target = f"user:{user.id}"


# --- signing in and out ------------------------------------------------------------------------


def _authenticate(op: Operation, *, username: str, password: str) -> User:
    op.target = f"username:{username.strip()[:64]}"
    user = auth.authenticate(op.session, username=username, password=password, source_ip=op.actor.source_ip)
    _acting_as(op, user)
    return user


def sign_in_web(actor: Actor, *, username: str, password: str) -> tuple[UserPublic, str]:
    """Check the password; the user and a new web-session token (the browser keeps it)."""
    with operation(actor, "auth.login") as op:
        user = _authenticate(op, username=username, password=password)
        return user_public(user), tokens.issue_session(op.session, user=user)


def sign_in_api(actor: Actor, *, username: str, password: str) -> tokens.TokenPair:
    """Check the password; a short-lived access token and the first refresh token of a new family."""
    with operation(actor, "auth.login") as op:
        user = _authenticate(op, username=username, password=password)
        return tokens.issue_pair(op.session, user=user)


def refresh(actor: Actor, *, refresh_token: str) -> tokens.TokenPair:
    """Rotate a refresh token; a reused one signs out its whole family (and is audited as such)."""
    with operation(actor, "auth.refresh") as op:
        try:
            user, pair = tokens.rotate(op.session, refresh_token=refresh_token)
        except tokens.RefreshReused as exc:
            op.target = f"user:{exc.user_id}"
            raise
        _acting_as(op, user)
        return pair


def sign_out(actor: Actor, *, refresh_token: str | None = None, session_token: str | None = None) -> None:
    """End this sign-in: a REST refresh family (and its access tokens) or a web session."""
    with operation(actor, "auth.logout") as op:
        op.target = f"user:{op.me.id}"
        if refresh_token:
            tokens.revoke_refresh(op.session, refresh_token=refresh_token, user=op.me)
        if session_token:
            tokens.revoke_session(op.session, session_token)


def signup_open() -> bool:
    """Whether self-service sign-up is on (the sign-up page asks before showing its form)."""
    with session_scope() as session:
        return auth.signup_enabled(session)


def _sign_up(op: Operation, *, username: str, password: str, email: str | None) -> User:
    op.target = f"username:{username.strip()[:64]}"
    user = auth.sign_up(
        op.session, username=username, password=password, email=email, source_ip=op.actor.source_ip
    )
    _acting_as(op, user)
    return user


def sign_up(actor: Actor, *, username: str, password: str, email: str | None) -> UserPublic:
    """Create an account, when a platform admin has not switched sign-up off (rate limited per IP)."""
    with operation(actor, "auth.signup") as op:
        return user_public(_sign_up(op, username=username, password=password, email=email))


def sign_up_web(actor: Actor, *, username: str, password: str, email: str | None) -> str:
    """`sign_up`, then signed in: a web-session token for the new account."""
    with operation(actor, "auth.signup") as op:
        user = _sign_up(op, username=username, password=password, email=email)
        return tokens.issue_session(op.session, user=user)


# --- single sign-on ----------------------------------------------------------------------------


def sso_sign_in(actor: Actor, *, claims: dict[str, Any]) -> str:
    """The account verified OpenID Connect claims sign in as, and a one-minute handoff code for the
    sign-in page. Raises oidc.SsoRefused (its `code` names the message the page shows)."""
    with operation(actor, "auth.oidc", target=f"oidc:{str(claims.get('sub', ''))[:64]}") as op:
        user, created = oidc.account_for(op.session, claims)
        op.user = user
        op.detail = f"issuer={get_settings().oidc_issuer}" + (" new account" if created else "")
        return tokens.issue_handoff(op.session, user=user)


def redeem_sso_handoff(actor: Actor, *, code: str) -> tuple[UserPublic, str]:
    """Trade a handoff code for a web session (the sign-in itself was audited as `auth.oidc`)."""
    with operation(actor, "auth.oidc_handoff", record=Audit.refusals) as op:
        user, session_token = tokens.redeem_handoff(op.session, code)
        return user_public(user), session_token


# --- passwords and profile ---------------------------------------------------------------------


def change_password(
    actor: Actor, *, current_password: str, new_password: str, new_web_session: bool = False
) -> str:
    """Change the password, which signs out every session and refresh family of the account.

    With `new_web_session` the web UI gets a fresh session token to stay signed in (else "").
    """
    with operation(actor, "auth.password_change") as op:
        op.target = f"user:{op.me.id}"
        auth.change_password(
            op.session, user=op.me, current_password=current_password, new_password=new_password
        )
        return tokens.issue_session(op.session, user=op.me) if new_web_session else ""


def reset_password(actor: Actor, *, token: str, new_password: str) -> None:
    """Set a new password with a single-use reset token from a platform admin."""
    with operation(actor, "auth.password_reset") as op:
        _acting_as(op, auth.reset_password(op.session, token=token, new_password=new_password))


def me(actor: Actor) -> UserPublic:
    with operation(actor, "user.read", record=Audit.refusals) as op:
        return user_public(op.me)


def update_profile(actor: Actor, *, avatar_name: str | None, badge_color: str | None) -> UserPublic:
    """Initials and badge colour; a colour too light for white initials (WCAG AA) is refused."""
    with operation(actor, "user.profile") as op:
        op.target = f"user:{op.me.id}"
        return user_public(
            auth.update_profile(op.session, user=op.me, avatar_name=avatar_name, badge_color=badge_color)
        )


# --- personal API tokens -----------------------------------------------------------------------


def list_tokens(actor: Actor) -> list[PersonalTokenPublic]:
    with operation(actor, "token.list", record=Audit.refusals) as op:
        return [PersonalTokenPublic.of(t) for t in tokens.list_personal_tokens(op.session, user=op.me)]


def create_token(actor: Actor, *, name: str, expires_in_days: int) -> PersonalTokenCreated:
    """A personal API token for scripts and CI; the secret is in this answer only (never audited)."""
    with operation(actor, "token.create") as op:
        row, secret = tokens.create_personal_token(
            op.session, user=op.me, name=name, expires_in_days=expires_in_days
        )
        op.target = f"token:{row.id}"
        return PersonalTokenCreated(**PersonalTokenPublic.of(row).model_dump(), token=secret)


def revoke_token(actor: Actor, *, token_id: int) -> None:
    """Only the token's owner may revoke it; someone else's id is NotFound (not leaked)."""
    with operation(actor, "token.revoke", target=f"token:{token_id}") as op:
        tokens.revoke_personal_token(op.session, user=op.me, token_id=token_id)


@dataclass(frozen=True)
class AccountView:
    """What the account page shows."""

    user: UserPublic
    email: str
    tokens: list[PersonalTokenPublic]


def account(actor: Actor) -> AccountView:
    with operation(actor, "user.read", record=Audit.refusals) as op:
        found = tokens.list_personal_tokens(op.session, user=op.me)
        return AccountView(
            user=user_public(op.me),
            email=op.me.email or "",
            tokens=[PersonalTokenPublic.of(t) for t in found],
        )
