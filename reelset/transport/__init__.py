"""The one HTTP transport, shared by TMDB calls, poster downloads and IMDb dataset downloads.

- :mod:`~reelset.transport.session`: the one ``requests`` session factory and the auth hooks;
- :mod:`~reelset.transport.retry`: what is retryable, ``Retry-After``, the one retry loop;
- :mod:`~reelset.transport.errors`: the :class:`FetchError` family, secret-free descriptions;
- :mod:`~reelset.transport.http`: :class:`HttpTransport`, rate-limited retrying API GETs;
- :mod:`~reelset.transport.limiter` and :mod:`~reelset.transport.ratespec`: client pacing.
"""
