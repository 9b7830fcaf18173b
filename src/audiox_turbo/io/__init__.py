"""Media I/O: audio decode/resample/save and video frame sampling/muxing."""

from audiox_turbo.io.audio import load_audio, peak_normalize, resample, save_audio
from audiox_turbo.io.video import load_video_frames, mux_audio_onto_video, video_duration

__all__ = [
    "load_audio",
    "load_video_frames",
    "mux_audio_onto_video",
    "peak_normalize",
    "resample",
    "save_audio",
    "video_duration",
]
