"""``make demo``: the main job end to end, offline, against the bundled TMDB sandbox.

It starts the sandbox (the bundled 300-movie catalog, in this process, on a free loopback
port), points a copy of the configured settings at it (nothing is written to the repo's
config; the sandbox's API key goes into ``TMDB_API_KEY`` of this process only) and runs the
equivalent of ``reelset scrape --strategy export`` into the configured store (by default
``data/reelset.db``), printing the summary, then ``reelset build`` into
``data/datasets/``. With a real ``TMDB_API_KEY`` and the default
config, ``reelset scrape --strategy export`` does the same against TMDB.
"""

from __future__ import annotations

import os
import sys

from reelset.commands.build import demo_build
from reelset.config import ENV_API_KEY, ENV_BEARER, Settings, load_settings, mask_url
from reelset.console import print_summary, setup_logging
from reelset.errors import ReelsetError
from reelset.redaction import register_secrets
from reelset.tmdb.scrape import ScrapeOptions, run_scrape

DEMO_RATE = "50/1s"


def sandbox_settings(settings: Settings, api_base_url: str, exports_base_url: str) -> Settings:
    """``settings`` with TMDB pointed at a sandbox and paced to its limit."""
    tmdb = settings.tmdb.model_copy(
        update={
            "api_base_url": api_base_url,
            "exports_base_url": exports_base_url,
            "image_base_url": "",
            "rate_limit": DEMO_RATE,
        }
    )
    return settings.model_copy(update={"tmdb": tmdb})


def main() -> int:
    """Scrape the sandbox into the configured store, then build a dataset from it."""
    setup_logging(0)
    from reelset.sandbox import Catalog, Sandbox

    try:
        base = load_settings()
    except ReelsetError as exc:
        print(f"reelset demo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    with Sandbox(catalog=Catalog.bundled(), rate=DEMO_RATE, latency_ms=5) as sandbox:
        os.environ[ENV_API_KEY] = sandbox.api_key
        os.environ.pop(ENV_BEARER, None)
        register_secrets([sandbox.api_key])
        settings = sandbox_settings(base, sandbox.api_base_url, sandbox.exports_base_url)
        store_url = mask_url(settings.storage.url)
        print(f"reelset demo: TMDB sandbox at {sandbox.api_base_url}, store {store_url}")
        try:
            result = run_scrape(settings, ScrapeOptions(strategy="export"))
        except ReelsetError as exc:
            print(f"reelset demo: error: {exc}", file=sys.stderr)
            return exc.exit_code
        print_summary(f"scrape run {result.run_id}: {result.status}", result.summary)
        if result.exit_code not in (0, 1):
            return result.exit_code

    # The builder reads the store only: the sandbox is no longer needed.
    try:
        return demo_build(base)
    except ReelsetError as exc:
        print(f"reelset demo: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
