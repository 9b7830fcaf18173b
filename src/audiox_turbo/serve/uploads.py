"""Request bodies: read with a size cap, JSON or multipart (prompt files saved to a folder),
and uploaded media checked before it is queued, each problem a `RequestError` naming the field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from audiox_turbo.errors import MediaError
from audiox_turbo.serve.schema import RequestError

UPLOAD_FIELDS = ("video", "audio")
MAX_FORM_FIELDS = 32


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or a 413 RequestError as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError("body", f"larger than the {limit}-byte upload limit", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError("body", f"larger than the {limit}-byte upload limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(
    request: Request, body: bytes, folder: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """(fields, {"video"|"audio": saved file path}) of a JSON or multipart body."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if kind == "multipart/form-data":
        return await _parse_multipart(request, body, folder)
    if kind != "application/json":
        raise RequestError("content-type", f"{kind!r}: send application/json or multipart", 415)
    try:
        data = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError("body", f"invalid JSON ({e})", 400) from None
    if not isinstance(data, dict):
        raise RequestError("body", "the JSON body must be an object")
    return data, {}


async def _parse_multipart(
    request: Request, body: bytes, folder: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    async def stream() -> AsyncIterator[bytes]:
        yield body
        yield b""

    parser = MultiPartParser(
        request.headers,
        stream(),
        max_files=len(UPLOAD_FIELDS),
        max_fields=MAX_FORM_FIELDS,
        max_part_size=64 * 1024,
    )
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise RequestError("body", f"invalid multipart body ({e.message})", 400) from None
    fields: dict[str, Any] = {}
    files: dict[str, str] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name not in UPLOAD_FIELDS:
                raise RequestError(name, "unknown upload; send video and/or audio")
            suffix = Path(value.filename or "").suffix.lower()[:8]
            path = folder / f"{name}{suffix}"
            path.write_bytes(await value.read())
            files[name] = str(path)
        elif value != "":  # an empty form input means "not given"
            fields[name] = value.split(",") if name == "span" else value
    await form.close()
    return fields, files


def check_uploads(files: dict[str, str]) -> None:
    """Decode the start of each uploaded prompt; RequestError naming the field if it fails."""
    from audiox_turbo.io.audio import load_audio
    from audiox_turbo.io.video import load_video_frames

    for name, path in files.items():
        try:
            if name == "video":
                load_video_frames(path, fps=1.0, size=8, num_frames=1)
            else:
                load_audio(path, duration=0.5)
        except MediaError as e:
            reason = str(e).split(": ", 1)[-1]
            raise RequestError(name, f"cannot read the uploaded file ({reason})") from None
