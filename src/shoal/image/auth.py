"""Registry credentials and the ``WWW-Authenticate`` challenge → ``Authorization`` header exchange.

Owns parsing of Basic/Bearer challenges and the token request (anonymous or with basic
credentials) of the Docker token protocol. It must not store credentials on disk; callers pass
a :class:`Credentials` (from ``shoal registry login``, a Secret, or the command line).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoal.image.errors import AuthError

if TYPE_CHECKING:
    import httpx

_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str

    @classmethod
    def parse(cls, text: str) -> Credentials:
        user, sep, password = text.partition(":")
        if not sep or not user:
            raise AuthError("credentials must be USER:PASSWORD")
        return cls(user, password)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


async def authorize(
    client: httpx.AsyncClient,
    registry: str,
    challenge: Challenge,
    scope: str,
    credentials: Credentials | None,
) -> str:
    """Answer a challenge: return the Authorization header value to retry with."""
    if challenge.scheme == "basic":
        if credentials is None:
            raise AuthError(
                f"registry {registry} requires a login: run `shoal registry login {registry}` "
                "or pass --creds USER:PASSWORD"
            )
        return credentials.basic_header()
    if challenge.scheme != "bearer" or "realm" not in challenge.params:
        raise AuthError(f"registry {registry}: unsupported authentication challenge {challenge.scheme!r}")
    params = {"scope": scope} if scope else {}
    if credentials is not None:
        params["account"] = credentials.username
    if "service" in challenge.params:
        params["service"] = challenge.params["service"]
    headers = {"Authorization": credentials.basic_header()} if credentials else {}
    import httpx

    try:
        resp = await client.get(challenge.params["realm"], params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise AuthError(
            f"registry {registry}: token service {challenge.params['realm']} unreachable: {exc}"
        ) from None
    if resp.status_code in (401, 403):
        who = (
            "credentials were rejected"
            if credentials
            else f"anonymous access denied; pass --creds USER:PASSWORD or run `shoal registry login {registry}`"
        )
        raise AuthError(f"registry {registry}: token service refused {scope or 'the login'}: {who}")
    if resp.status_code != 200:
        raise AuthError(f"registry {registry}: token service answered HTTP {resp.status_code}")
    body = resp.json()
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise AuthError(f"registry {registry}: token service returned no token")
    return f"Bearer {token}"
