"""``voicebot serve`` (SIP + HTTP in one process), ``voicebot bench sip`` (real SIP calls over loopback) and
``voicebot bench soak`` (many sequential real calls: does the server grow?)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from voicebot.commands.errors import fail, settings_or_exit


def serve(
    sip_port: Annotated[
        int | None, typer.Option("--sip-port", help="SIP port, UDP and TCP (default 5060).")
    ] = None,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="HTTP port for /call and /healthz (default 8080).")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind SIP, RTP and HTTP to (default 127.0.0.1).")
    ] = None,
) -> None:
    """Answer phone calls (SIP) and browser calls (http://HOST:PORT/call) until Ctrl-C."""
    for name, port in (("--sip-port", sip_port), ("--http-port", http_port)):
        if port is not None and not 0 < port < 65536:
            raise fail(f"{name} must be between 1 and 65535, not {port}")
    from voicebot.process_limits import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread allocates: RSS stays flat over many calls (bench soak)
    settings = settings_or_exit()
    from voicebot.logs import configure_logging

    # One log level (``log_level``) for our loguru logs, pipecat's and the SIP/RTP stdlib loggers; no variable
    # dumps in tracebacks (they would print the settings and what callers sent).
    configure_logging(settings.log_level, log_format=settings.log_format)

    from voicebot.db.migrate import DatabaseUnavailable
    from voicebot.models import ModelError
    from voicebot.pipeline.hold_audio import HoldAudioError, load_hold_audio
    from voicebot.server import ListenError
    from voicebot.server import serve as run_server
    from voicebot.web.app import CallPageSettingsError, render_call_page
    from voicebot.web.staff_auth import SessionSecretError, load_secret

    try:
        render_call_page(settings)  # a bad privacy_url is a configuration error before any model loads
        load_secret(settings)  # the sign-in key: made now on the first start, or a one-line error
        load_hold_audio(settings.queue.hold_audio_file)  # a queue's hold music: a wrong file fails now
    except (CallPageSettingsError, SessionSecretError, HoldAudioError) as error:
        raise fail(str(error)) from None
    try:
        asyncio.run(run_server(settings, host=host, sip_port=sip_port, http_port=http_port))
    except (ModelError, DatabaseUnavailable) as error:
        raise fail(str(error)) from None
    except ListenError as error:
        reason = error.strerror or str(error)  # "HTTP port 8080 on 127.0.0.1: Address already in use"
        raise fail(f"cannot listen: {reason}; choose another --sip-port/--http-port or --host") from None
    except OSError as error:  # a folder or file it needs (index, records, models) cannot be made or read
        where = f": {error.filename}" if error.filename else ""
        raise fail(f"cannot start: {error.strerror or error}{where}") from None
    except KeyboardInterrupt:
        pass


def bench_sip(
    calls: Annotated[int, typer.Option("--calls", min=1, help="Number of calls to place.")] = 4,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Calls in flight at once.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Real SIP calls over loopback with German speech: call setup time, voice-to-voice latency, failures."""
    from voicebot.benchmarks.sip import format_report, run_sip_benchmark

    settings = settings_or_exit()
    try:
        report = asyncio.run(run_sip_benchmark(settings, calls=calls, concurrency=concurrency))
    except RuntimeError as error:  # the server did not come up (missing model, port) or espeak-ng is missing
        raise fail(str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        typer.echo(format_report(report))
    if report.get("failed_calls"):
        raise typer.Exit(code=1)


def bench_soak(
    calls: Annotated[int, typer.Option("--calls", min=2, help="Number of sequential calls to place.")] = 30,
    warmup: Annotated[
        int, typer.Option("--warmup", min=0, help="First calls left out of the growth per call.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Sequential real SIP calls against `voicebot serve`: its RSS and threads after each call, growth per call."""
    from voicebot.benchmarks.soak import format_call, format_report, run_soak

    settings = settings_or_exit()
    on_call = None if as_json else (lambda call: typer.echo(format_call(call)))
    try:
        report = asyncio.run(run_soak(settings, calls=calls, warmup=min(warmup, calls - 2), on_call=on_call))
    except RuntimeError as error:  # the server did not come up (missing model, port) or espeak-ng is missing
        raise fail(str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)) from None
    typer.echo(json.dumps(report, indent=2, ensure_ascii=False) if as_json else format_report(report))
    if report["failed_calls"]:
        raise typer.Exit(code=1)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``voicebot serve``, ``voicebot bench sip`` and ``voicebot bench soak``."""
    app.command("serve")(serve)
    bench_app.command("sip")(bench_sip)
    bench_app.command("soak")(bench_soak)
