"""Single sign-on with any OpenID Connect provider, by Authlib.

Authlib does the protocol: discovery, state and nonce (kept in a short-lived signed cookie),
PKCE, the code exchange and the ID token's signature, issuer, audience and expiry checks. Both
routes answer with a redirect to the sign-in page, never with a JSON error, because a browser
follows them: on success with a single-use handoff code the page trades for a web session, on
failure with a short code the page turns into a message (services.domain.oidc.MESSAGES).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.starlette_client import OAuth, OAuthError, StarletteOAuth2App
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp

from app.api.deps import ClientIp
from services.actions import accounts
from services.actions.core import Actor
from services.domain import auth, oidc, tokens
from services.errors import DomainError
from services.infra.settings import get_settings

router = APIRouter(prefix="/auth/oidc", tags=["auth"])

LOGIN_PAGE = "/login"
_NEXT = "vtp_sso_next"


class SsoCookie(SessionMiddleware):
    """Authlib keeps state, nonce and the PKCE verifier in `request.session` between the two routes.

    The cookie is signed with the platform's token key (the same on every replica), lives ten
    minutes and is sent on the provider's top-level redirect back (SameSite=Lax).
    """

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(
            app,
            secret_key=tokens.jwt_key().decode(),
            session_cookie="vtp_sso",
            max_age=600,
            same_site="lax",
            https_only=get_settings().api_base_url.startswith("https://"),
        )


@lru_cache(maxsize=4)
def _client(issuer: str, client_id: str, client_secret: str, scopes: str) -> StarletteOAuth2App:
    registry = OAuth()
    registry.register(
        "oidc",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": scopes, "code_challenge_method": "S256"},
    )
    client = registry.create_client("oidc")
    assert client is not None
    return client


def client() -> StarletteOAuth2App:
    settings = get_settings()
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
    return _client(settings.oidc_issuer, settings.oidc_client_id, secret, settings.oidc_scopes)


def _to_login(**query: str) -> RedirectResponse:
    return RedirectResponse(f"{LOGIN_PAGE}?{urlencode(query)}", status_code=303)


@router.get("/login", status_code=303, response_class=RedirectResponse, responses={303: {}})
async def oidc_login(request: Request, next: str = "/") -> RedirectResponse:
    """Start single sign-on: off to the identity provider's sign-in page."""
    if not oidc.enabled():
        return _to_login(sso_error="off")
    request.session[_NEXT] = auth.safe_next(next)
    try:
        return await client().authorize_redirect(request, oidc.redirect_uri())
    except (OAuthError, OSError, ValueError):  # the provider's discovery document is unreachable
        return _to_login(sso_error="failed")


@router.get("/callback", status_code=303, response_class=RedirectResponse, responses={303: {}})
async def oidc_callback(request: Request, ip: ClientIp) -> RedirectResponse:
    """Where the provider sends the browser back; signs in as the account of the verified email."""
    if not oidc.enabled():
        return _to_login(sso_error="off")
    next_path = auth.safe_next(request.session.pop(_NEXT, None))
    if request.query_params.get("error"):
        return _to_login(sso_error="cancelled")
    provider = client()
    try:
        token = await provider.authorize_access_token(request)
        claims: dict[str, Any] = dict(token.get("userinfo") or {})
        if "email" not in claims:  # many providers put the email in userinfo only
            claims |= dict(await provider.userinfo(token=token))
    except (OAuthError, OSError, ValueError, KeyError):
        return _to_login(sso_error="failed")

    actor = Actor.anonymous(channel="rest", source_ip=ip)
    try:
        code = await run_in_threadpool(accounts.sso_sign_in, actor, claims=claims)
    except oidc.SsoRefused as refused:
        return _to_login(sso_error=refused.code)
    except DomainError:
        return _to_login(sso_error="failed")
    return _to_login(sso=code, next=next_path)
