"""`stillguard web`: serve the web page (gradio, the ``web`` extra) for one loaded model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import DEBUG, _errors, _stderr, _warn_demo_model, app, check_model_available


@app.command()
def web(
    model: Annotated[
        str | None,
        typer.Option(
            help="Hub id, local folder, 'toy' or 'tiny' [default: the target's real checkpoint]."
        ),
    ] = None,
    target: Annotated[str, typer.Option(help="Target model family.")] = "cogvideox-i2v",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, mps.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="float32, bf16, fp16.")] = "float32",
    host: Annotated[
        str, typer.Option(help="Address to listen on; other than 127.0.0.1 needs --auth.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 7860,
    auth: Annotated[
        str | None, typer.Option(help="USER:PASSWORD that the page asks for.", show_default=False)
    ] = None,
    auth_file: Annotated[
        Path | None,
        typer.Option(help="File of USER:PASSWORD lines (one per person).", readable=False),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve another address without a password (warns).")
    ] = False,
    max_upload_mb: Annotated[float, typer.Option(help="Largest file accepted, in MB.")] = 30,
    max_pixels: Annotated[
        int, typer.Option(help="Refuse photos with more pixels (decompression-bomb guard).")
    ] = 25_000_000,
    max_photos: Annotated[int, typer.Option(help="Most photos in one run.")] = 10,
    calibrate: Annotated[
        bool, typer.Option(help="Time one step of each protection at start (expected times).")
    ] = True,
    debug: DEBUG = False,
) -> None:
    """Serve a web page: upload photos, protect them, download, verify (needs the 'web' extra)."""
    with _errors(debug):
        from ..bounds import check_all

        check_all({"--port": ("port", port), "--max-upload-mb": ("max_upload_mb", max_upload_mb),
                   "--max-pixels": ("max_pixels", max_pixels),
                   "--max-photos": ("max_photos", max_photos)})  # fmt: skip
        try:
            import gradio  # noqa: F401
        except ImportError:
            from ..errors import InputError

            raise InputError(
                "the web page needs gradio: pip install 'stillguard[web]' (or ./run.sh, which "
                "installs the dev extra)"
            ) from None
        from ..app.config import build_config
        from ..web import Limits, check_access, serve

        access = check_access(host, port, auth=auth, auth_file=auth_file, no_auth=no_auth)
        limits = Limits(max_upload_mb=max_upload_mb, max_pixels=max_pixels, max_photos=max_photos)
        cfg = build_config("default", target=target, model=model, device=device, dtype=dtype)
        check_model_available(cfg.model)
        err = _stderr()
        if access.open_warning:
            err.print(access.open_warning, style="bold red", markup=False)
        _warn_demo_model(cfg.model)
        timing = " and timing one step of each protection" if calibrate else ""
        err.print(f"loading {cfg.target_name} ({cfg.model}){timing} ...", markup=False)
        serve(access, target=target, model=cfg.model, device=device, dtype=dtype, limits=limits,
              calibrate=calibrate)  # fmt: skip
