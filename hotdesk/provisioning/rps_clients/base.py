"""What every redirect-service client offers, and the one error type they raise."""

from __future__ import annotations

from typing import Protocol


class RpsError(Exception):
    """The service refused or could not be reached.

    The message is for the admin: a refusal quotes the service's own words verbatim
    (e.g. ``error:invalid mac(s):0015651234AB``). It never contains a credential.
    """


class RpsClient(Protocol):
    """One vendor redirect service account. MACs are 12 lower-case hex digits."""

    name: str

    def register(self, mac: str, url: str, username: str | None = None,
                 password: str | None = None) -> str:
        """Point ``mac`` at ``url``; return the service's confirmation."""
        ...

    def deregister(self, mac: str) -> str:
        """Remove ``mac`` from the account; return the service's confirmation."""
        ...

    def check(self, mac: str) -> str:
        """The service's own word on ``mac`` (e.g. registered / unregistered)."""
        ...


def url_with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``https://user:pass@host/…``: how the redirect services pass provisioning credentials
    to the phone along with the URL."""
    if not username:
        return url
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    userinfo = quote(username, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc.rpartition('@')[2]}"))
