"""The one place ``requests`` sessions are made, and the credentials they carry.

Every download (TMDB calls, posters, IMDb dataset files) goes over a session from
:func:`make_session`: one connection pool sized for its workers, keep-alive, no retries
of its own (:mod:`reelset.transport.retry` retries) and a reelset ``User-Agent``.

Secrets: the API key travels as the ``api_key`` query parameter, added by
:class:`ApiKeyAuth` at the last moment, so the URLs we build and report never hold it;
urllib3's DEBUG request lines, which do, pass the redaction filters.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from reelset import __version__
from reelset.redaction import RedactQuerySecrets, RedactSecrets, register_secrets

USER_AGENT = f"reelset/{__version__} (+requests)"

_LIBRARY_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.response")
_guarded = False


def make_session(
    pool_size: int,
    *,
    user_agent: str = USER_AGENT,
    headers: Mapping[str, str] | None = None,
) -> requests.Session:
    """A ``requests.Session`` for ``pool_size`` concurrent workers.

    One connection pool per host with room for every worker (so connections are reused,
    never opened and thrown away), keep-alive, no retries of its own (callers retry with
    backoff), and no ``Connection: close``. ``headers`` are sent with every request.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": user_agent, "Connection": "keep-alive"})
    session.headers.update(headers or {})
    _guard_library_logs()
    return session


_templates: weakref.WeakKeyDictionary[requests.Session, tuple[object, requests.PreparedRequest]]
_templates = weakref.WeakKeyDictionary()
_templates_lock = threading.Lock()


def _plain(session: requests.Session) -> bool:
    """Whether ``session.get`` adds nothing per URL beyond the URL itself: no cookies, no
    auth (nor netrc, read only with ``trust_env``), no params."""
    return (
        not session.trust_env
        and session.auth is None
        and not session.params
        and len(session.cookies) == 0
    )


def get(
    session: requests.Session,
    url: str,
    *,
    stream: bool = False,
    timeout: float | tuple[float, float] | None = None,
) -> requests.Response:
    """``session.get(url, stream=stream, timeout=timeout)``, cheaper when sent often.

    The same request goes out, redirects are followed and hooks run alike (through
    ``session.send``), but a session without cookies, auth, params or environment
    lookups (``trust_env`` off) has its request prepared once (headers and hooks
    merged) and only the URL prepared per call: a third of requests' CPU per request.
    Any other session takes ``session.get`` itself.
    """
    if not _plain(session):
        return session.get(url, stream=stream, timeout=timeout)
    key = (tuple(session.headers.items()), tuple(session.hooks.get("response", ())))
    with _templates_lock:
        known = _templates.get(session)
    if known is None or known[0] != key:
        template = session.prepare_request(requests.Request("GET", url))
        with _templates_lock:
            _templates[session] = (key, template)
    else:
        template = known[1]
    prepared = template.copy()
    prepared.prepare_url(url, None)
    return session.send(prepared, stream=stream, timeout=timeout, allow_redirects=True)


def _guard_library_logs() -> None:
    # urllib3 logs request lines (with the query string) at DEBUG under -vv.
    global _guarded
    if _guarded:
        return
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).addFilter(RedactSecrets())
        logging.getLogger(name).addFilter(RedactQuerySecrets())
    _guarded = True


class ApiKeyAuth(AuthBase):
    """Adds ``api_key=...`` to the request URL when it is sent (TMDB v3 style)."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        register_secrets([api_key])

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.prepare_url(r.url, {"api_key": self._api_key})
        return r

    def __repr__(self) -> str:
        return "ApiKeyAuth(***)"


class BearerAuth(AuthBase):
    """Sends ``Authorization: Bearer <token>`` (a TMDB read access token)."""

    def __init__(self, token: str) -> None:
        self._token = token
        register_secrets([token])

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "BearerAuth(***)"
