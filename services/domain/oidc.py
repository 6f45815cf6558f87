"""Single sign-on: which local account an OpenID Connect identity signs in as.

The protocol itself (discovery, state, nonce, PKCE, code exchange, ID-token signature) is Authlib's,
wired in app/api/routes/oidc.py; this module holds only our rule. An identity is matched to an
account by its email, and only when the provider says the email is verified: an unverified address
could be anyone's. A new email gets a new account only while self-service sign-up is on, since
single sign-on must not open a back door an admin has closed.

A refusal travels to the sign-in page as a short code in the URL (never as free text, which a
crafted link could fill with anything); `MESSAGES` turns the code into what the user reads.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlmodel import Session, func, select

from services.domain import auth
from services.domain.models import User
from services.errors import PermissionDenied
from services.infra.settings import get_settings

LOGIN_PATH = "/api/v1/auth/oidc/login"
CALLBACK_PATH = "/api/v1/auth/oidc/callback"

MESSAGES: dict[str, str] = {
    "cancelled": "Single sign-on was cancelled or refused by the identity provider. Try again.",
    "failed": "Single sign-on could not be completed (the answer from the identity provider was not "
    "valid or had expired). Try again; if it keeps failing, ask an administrator to check the SSO settings.",
    "unverified": "Your identity provider did not confirm your email address. Verify it there, then "
    "sign in again.",
    "no-account": "No account here uses your email address and sign-up is switched off. Ask an "
    "administrator to create your account.",
    "ambiguous": "More than one account here uses your email address. Ask an administrator to fix it.",
    "inactive": "Your account is deactivated. Ask an administrator to reactivate it.",
    "expired": "That sign-in link has expired or was already used. Sign in again.",
    "off": "Single sign-on is not configured on this platform. Sign in with your username and password.",
}


class SsoRefused(PermissionDenied):
    """A refusal with the `MESSAGES` code the sign-in page shows."""

    def __init__(self, code: str, *, reason: str = "") -> None:
        super().__init__(MESSAGES[code], reason=reason or code)
        self.code = code


def enabled() -> bool:
    settings = get_settings()
    return bool(settings.oidc_issuer and settings.oidc_client_id)


def display_name() -> str:
    return get_settings().oidc_display_name


def redirect_uri() -> str:
    return get_settings().api_base_url + CALLBACK_PATH


def _verified(claims: dict[str, Any]) -> bool:
    # Some providers send the boolean as a string.
    return claims.get("email_verified") in (True, "true", "True")


def _free_username(session: Session, claims: dict[str, Any], email: str) -> str:
    wanted = str(claims.get("preferred_username") or email.split("@", 1)[0])
    base = re.sub(r"[^A-Za-z0-9_-]", "-", wanted).strip("-")[:56] or "user"
    base = base if len(base) >= 3 else f"{base}-sso"
    candidate, n = base, 1
    while session.exec(select(User.id).where(User.username == candidate)).first() is not None:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def account_for(session: Session, claims: dict[str, Any]) -> tuple[User, bool]:
    """The account these verified claims sign in as (created when sign-up allows it), and whether
    it was created now. Raises SsoRefused, whose `reason` is for the audit log."""
    email = str(claims.get("email") or "").strip()
    if not email or not _verified(claims):
        raise SsoRefused("unverified", reason="email missing or unverified")
    matches = session.exec(select(User).where(func.lower(User.email) == email.lower())).all()
    if len(matches) > 1:
        raise SsoRefused("ambiguous", reason="email matches several accounts")
    if matches:
        if not matches[0].is_active:
            raise SsoRefused("inactive", reason="account deactivated")
        return matches[0], False
    if not auth.signup_enabled(session):
        raise SsoRefused("no-account", reason="no account, sign-up off")
    # The account has no usable password until its owner sets one through a reset.
    user = auth.create_user(
        session,
        username=_free_username(session, claims, email),
        password=secrets.token_urlsafe(32),
        email=email,
    )
    return user, True
