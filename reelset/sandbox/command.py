"""The sandbox's own command line: ``reelset sandbox serve`` and ``python -m reelset.sandbox``.

``reelset sandbox`` mounts this same group (:mod:`reelset.commands.sandbox` imports it from
here), so the sandbox depends on nothing of the command layer: it stays a leaf that tests,
demos and benchmarks can start without reelset's config or store.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click

from reelset.sandbox import Catalog, FaultSpec, Sandbox, parse_fault_spec
from reelset.transport.ratespec import RateSpec, parse_rate

_NO_RATE = ("none", "off", "unlimited")
"""``--rate`` values that turn the rate limit off."""


def _parse_rate_option(text: str) -> RateSpec | None:
    """``--rate``: a rate spec such as ``40/10s``, or None for no limit (usage error if bad)."""
    if text.strip().lower() in _NO_RATE:
        return None
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise click.UsageError(f"--rate: {exc}") from None


def _parse_faults_option(text: str | None) -> FaultSpec | None:
    """``--faults``: the parsed fault spec, or None without one (usage error if bad)."""
    if text is None:
        return None
    try:
        return parse_fault_spec(text)
    except ValueError as exc:
        raise click.UsageError(f"--faults: {exc}") from None


def _load_catalog(catalog_path: Path | None, synthetic: int | None, seed: int) -> Catalog:
    """The catalog to serve: ``--synthetic``, ``--catalog`` or the bundled sample."""
    if catalog_path is not None and synthetic is not None:
        raise click.UsageError("--catalog and --synthetic cannot be used together")
    if synthetic is not None:
        return Catalog.synthetic(synthetic, seed=seed)
    if catalog_path is not None:
        try:
            return Catalog.from_file(catalog_path)
        except ValueError as exc:
            raise click.UsageError(f"--catalog: {exc}") from None
    return Catalog.bundled()


@click.group("sandbox")
def sandbox_group() -> None:
    """An offline TMDB API v3 look-alike on a local port, for demos and tests."""


@sandbox_group.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Catalog file (JSON lines, optionally gzipped).")
@click.option("--synthetic", type=click.IntRange(min=0), default=None, metavar="N",
              help="Serve N synthetic movies instead of the bundled sample.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the synthetic catalog.")
@click.option("--rate", "rate_text", default="40/10s", show_default=True,
              help="Rate limit of API requests, e.g. 40/10s; 'none' for no limit.")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Delay added before every answer.")
@click.option("--faults", "faults_text", default=None, metavar="SPEC",
              help="Faults to inject, e.g. 'rate=0.1,kinds=500+reset,attempts=2,seed=7'.")
@click.option("--poster-faults", is_flag=True,
              help="Give some movies broken posters of every kind.")
@click.option("--exports-days", type=click.IntRange(min=0), default=3, show_default=True,
              help="How many daily export files (today and before) exist.")
def serve(
    port: int,
    host: str,
    catalog_path: Path | None,
    synthetic: int | None,
    seed: int,
    rate_text: str,
    latency_ms: float,
    faults_text: str | None,
    poster_faults: bool,
    exports_days: int,
) -> None:
    """Serve the sandbox until interrupted (Ctrl+C or SIGTERM)."""
    rate = _parse_rate_option(rate_text)
    faults = _parse_faults_option(faults_text)
    catalog = _load_catalog(catalog_path, synthetic, seed)
    if poster_faults:
        try:
            catalog = catalog.with_image_faults().catalog
        except ValueError as exc:
            raise click.UsageError(f"--poster-faults: {exc}") from None
    sandbox = Sandbox(
        catalog,
        host=host,
        port=port,
        rate=rate,
        latency_ms=latency_ms,
        faults=faults,
        exports_available_days=exports_days,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        """SIGINT/SIGTERM: make ``serve_forever`` return, so the server stops cleanly."""
        sandbox.request_stop()

    try:
        sandbox.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        click.echo(f"reelset TMDB sandbox: {catalog.description}, {len(catalog)} movies")
        click.echo(f"API base URL:      {sandbox.api_base_url}")
        click.echo(f"Image base URL:    {sandbox.image_base_url}")
        click.echo(f"Exports base URL:  {sandbox.exports_base_url}")
        click.echo(f"API key:           {sandbox.api_key}")
        click.echo(f"Read access token: {sandbox.read_access_token}")
        click.echo(f"Rate limit:        {rate if rate is not None else 'none'}")
        if faults is not None:
            click.echo(f"Faults:            {faults.to_text()}")
        click.echo("Serving; press Ctrl+C to stop.")
        sandbox.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sandbox.stop()
    click.echo("Sandbox stopped.")

