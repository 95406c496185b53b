"""Serve the page: who may reach it, what they may send, and nothing fetched from the network.

Choices:
    * the page listens on ``127.0.0.1`` unless told otherwise; any other address needs
      credentials (``auth``: ``USER:PASSWORD``, or a file of such lines) or an explicit
      ``no_auth=True``, which logs a warning: an open page lets anyone on the network spend the
      machine's GPU and CPU;
    * gradio's telemetry is off (``GRADIO_ANALYTICS_ENABLED=False`` before gradio is imported, and
      ``analytics_enabled=False`` on the page), no share link is ever made, server-side rendering
      (a Node process) is off; the default theme's fonts ship inside gradio, so the page loads
      nothing from outside the server (the browser test checks every request);
    * uploads over ``max_upload_mb`` are refused by gradio before they reach stillguard;
      ``max_pixels`` and the photo count are checked by :mod:`.work`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bounds import check
from ..errors import InputError

log = logging.getLogger(__name__)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
NO_AUTH_WARNING = (
    "warning: serving on {host} WITHOUT a password (--no-auth): anyone who can reach this address "
    "can upload files and use this machine's GPU/CPU; pass --auth USER:PASSWORD to restrict it"
)


def quiet_gradio() -> None:
    """Turn gradio's telemetry off; call before ``import gradio``."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_SSR_MODE", "False")


def is_local(host: str) -> bool:
    """True for loopback addresses (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_credentials(text: str, where: str) -> list[tuple[str, str]]:
    """``USER:PASSWORD`` lines (blank lines and ``#`` comments skipped) -> ``[(user, password)]``."""
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise InputError(
                f"{where}: {line[:40]!r} is not USER:PASSWORD; write e.g. alice:a-long-password"
            )
        pairs.append((user, password))
    if not pairs:
        raise InputError(f"{where}: no USER:PASSWORD given")
    return pairs


@dataclass
class Access:
    """Where the page listens and who may use it."""

    host: str = "127.0.0.1"
    port: int | None = None
    credentials: list[tuple[str, str]] | None = None
    open_warning: str | None = None  # printed by the front when serving openly off this machine


def check_access(
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    auth: str | None = None,
    auth_file: str | os.PathLike[str] | None = None,
    no_auth: bool = False,
) -> Access:
    """Validate the address and the credentials before any model is loaded.

    Raises:
        InputError: a non-local address with neither credentials nor ``no_auth``, both at once,
            a bad port, or unreadable credentials.
    """
    if port is not None:
        check("port", port, "--port")
    creds: list[tuple[str, str]] = []
    if auth:
        creds += parse_credentials(auth, "--auth")
    if auth_file:
        path = Path(auth_file).expanduser()
        try:
            creds += parse_credentials(path.read_text(), str(path))
        except OSError as e:
            raise InputError(f"--auth-file {path}: cannot read it ({e.strerror or e})") from None
    if creds and no_auth:
        raise InputError("--no-auth and --auth/--auth-file contradict each other: pass one")
    access = Access(host, None if port is None else int(port), creds or None)
    if not is_local(host) and not creds:
        if not no_auth:
            raise InputError(
                f"serving on {host} makes the page reachable from other machines: pass "
                "--auth USER:PASSWORD (or --auth-file FILE), or --no-auth to serve it openly"
            )
        access.open_warning = NO_AUTH_WARNING.format(host=host)
    return access


def launch(page: Any, access: Access, *, max_upload_mb: float, block: bool = True,
           allowed: list[str] | None = None) -> Any:  # fmt: skip
    """Start serving ``page``; with ``block=False`` return at once (tests), else serve until ^C.

    Returns:
        gradio's ``(app, local_url, share_url)``.
    """
    if access.open_warning:
        log.warning(access.open_warning)
    started = page.launch(
        server_name=access.host,
        server_port=access.port,
        auth=access.credentials,
        share=False,
        inbrowser=False,
        prevent_thread_lock=True,
        max_file_size=int(max_upload_mb * 2**20),
        ssr_mode=False,
        mcp_server=False,
        quiet=True,
        show_error=False,
        allowed_paths=allowed,
        footer_links=["api"],
        css=_css(),
    )
    if block:
        print(f"serving on {started[1]} (Ctrl+C stops)", flush=True)
        page.block_thread()
    return started


def _css() -> str:
    from .render import CSS

    return CSS
