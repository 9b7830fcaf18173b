"""`audiox-turbo serve`: the HTTP API and web page on uvicorn."""

from __future__ import annotations

import typer

from audiox_turbo.errors import AudioXError


def serve(
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model directory (default: shipped)."
    ),
    preset_name: str | None = typer.Option(None, "--preset", help="Preset with random weights."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16"),
    cuda_graphs: bool = typer.Option(
        False, "--cuda-graphs", help="Replay the denoiser as CUDA graphs."
    ),
    max_batch: int = typer.Option(16, help="Most requests run as one batch (1: no batching)."),
    max_wait_ms: float = typer.Option(20.0, help="How long a request waits for companions."),
    max_queue: int = typer.Option(64, help="Queued requests before answering 503."),
    max_duration: float = typer.Option(30.0, help="Longest duration a request may ask for (s)."),
    max_upload_mb: float = typer.Option(50.0, help="Largest request body (MB)."),
    timeout: float = typer.Option(300.0, help="Seconds before a request is answered 503."),
) -> None:
    """Serve a model: POST /v1/generate, GET /v1/models, /health, /metrics, /docs and the page /."""
    try:
        import uvicorn

        from audiox_turbo.serve.app import create_app
        from audiox_turbo.serve.schema import ServeLimits
    except ImportError as e:
        raise AudioXError(
            f"serving needs the [serve] extra: pip install 'audiox-turbo[serve]' ({e})"
        ) from None
    from audiox_turbo.cli.models import load_model

    if max_batch < 1 or max_queue < 1:
        raise AudioXError("--max-batch and --max-queue must be ≥ 1")
    pipe = load_model(model, preset_name, device, dtype)
    if cuda_graphs:
        pipe.enable_cuda_graphs()
    if not pipe.trained:
        typer.echo(f"notice: model '{pipe.config.name}' has untrained (random) weights", err=True)
    limits = ServeLimits(
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_duration=max_duration,
        max_queue=max_queue,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        timeout_s=timeout,
    )
    typer.echo(f"serving on http://{host}:{port} (API docs: /docs)", err=True)
    uvicorn.run(create_app(pipe, limits), host=host, port=port, log_level="warning")
