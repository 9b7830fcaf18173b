"""The request schema shared by the HTTP API and batch jobs (prompts.jsonl), its limits, and
the one-line `RequestError` that names the offending field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audiox_turbo.errors import AudioXError
from audiox_turbo.interface import GenerationRequest, Pipeline

OutputFormat = Literal["wav", "flac", "mp3", "mp4"]
CONTENT_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "mp4": "video/mp4",
}


class RequestError(AudioXError):
    """A bad request: `field` names the offending field (None: the request as a whole)."""

    def __init__(self, field: str | None, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field, self.message, self.status = field, message, status


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for, and how the batching queue behaves."""

    max_upload_bytes: int = 50 * 1024 * 1024
    max_duration: float = 30.0
    max_num_outputs: int = 4
    max_steps: int = 200
    max_text_chars: int = 1000
    max_queue: int = 64
    max_batch: int = 16
    max_wait_ms: float = 20.0
    timeout_s: float = 300.0


class GenerationOptions(BaseModel):
    """The fields of one generation, as JSON: prompts and sampling options."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="Text prompt.")
    duration: float | None = Field(None, gt=0, description="Seconds (default: the model's).")
    steps: int | None = Field(None, ge=1, description="Sampling steps (default: the model's).")
    cfg: float | None = Field(None, ge=0, description="Guidance scale (1 = off).")
    seed: int | None = Field(None, ge=0, lt=2**63, description="Random seed (default: random).")
    num_outputs: int = Field(1, ge=1, description="Outputs for this prompt.")
    method: Literal["euler", "heun", "student"] | None = None
    audio_mode: Literal["continue", "inpaint", "reference"] | None = None
    span: tuple[float, float] | None = Field(None, description="START, END s to regenerate.")
    video_start: float = Field(0.0, ge=0, description="Seconds into the video prompt.")
    format: OutputFormat | None = Field(None, description="Default: mp4 with a video, else wav.")

    def check(self, limits: ServeLimits, pipe: Pipeline) -> None:
        """RequestError naming the field when a value is outside the limits or the model's."""
        if self.text is not None and len(self.text) > limits.max_text_chars:
            raise RequestError("text", f"longer than {limits.max_text_chars} characters")
        if self.duration is not None and self.duration > limits.max_duration:
            raise RequestError("duration", f"at most {limits.max_duration:g} s on this server")
        if self.num_outputs > limits.max_num_outputs:
            raise RequestError("num_outputs", f"at most {limits.max_num_outputs} on this server")
        if self.steps is not None and self.steps > limits.max_steps:
            raise RequestError("steps", f"at most {limits.max_steps} on this server")
        if self.span is not None and not 0 <= self.span[0] < self.span[1]:
            raise RequestError("span", "needs 0 ≤ START < END")
        try:
            pipe.check_duration(self.duration)
        except AudioXError as e:
            raise RequestError("duration", str(e)) from None

    def output_format(self, has_video: bool) -> OutputFormat:
        """The format to return: as asked, else mp4 for a video prompt, else wav."""
        if self.format == "mp4" and not has_video:
            raise RequestError("format", "mp4 needs a video prompt to put the audio on")
        return self.format or ("mp4" if has_video else "wav")

    def request(self, video: str | None = None, audio: str | None = None) -> GenerationRequest:
        """The pipeline request for these options and the given prompt files."""
        return GenerationRequest(
            text=self.text,
            video=video,
            audio=audio,
            audio_mode=self.audio_mode,
            span=self.span,
            duration=self.duration,
            steps=self.steps,
            cfg=self.cfg,
            seed=self.seed,
            num_outputs=self.num_outputs,
            method=self.method,
            video_start=self.video_start,
        )


class ApiRequest(GenerationOptions):
    """`POST /v1/generate`: the options, and whether to answer with the file or JSON."""

    response: Literal["file", "json"] = Field(
        "file", description="file: the audio/video bytes; json: base64 outputs + spectrograms."
    )


class JobLine(GenerationOptions):
    """One line of a prompts.jsonl batch job: the options, prompt files and an output name."""

    name: str | None = Field(None, pattern=r"^[\w][\w.-]{0,127}$", description="Output name.")
    video: str | None = Field(None, description="Video prompt file (relative: to the jsonl).")
    audio: str | None = Field(None, description="Audio prompt file (relative: to the jsonl).")


def first_error(error: ValidationError) -> RequestError:
    """The first pydantic error as a RequestError naming its field."""
    detail: dict[str, Any] = error.errors()[0]
    field = ".".join(str(p) for p in detail["loc"] if p != "body") or None
    return RequestError(field, detail["msg"])


def parse_options(model: type[GenerationOptions], data: Any) -> Any:
    """`data` (a dict) validated as `model`; RequestError naming the first bad field."""
    if not isinstance(data, dict):
        raise RequestError(None, "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise first_error(e) from None
