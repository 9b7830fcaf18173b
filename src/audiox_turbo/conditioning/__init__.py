"""Conditioning: text, video and audio-prompt conditioners, Multimodal Adaptive Fusion."""

from audiox_turbo.conditioning.audio import AUDIO_MODES, AudioPromptConditioner, audio_keep_mask
from audiox_turbo.conditioning.conditioner import Conditioner, Conditions, condition_dropout
from audiox_turbo.conditioning.fusion import MultimodalAdaptiveFusion
from audiox_turbo.conditioning.text import TextConditioner
from audiox_turbo.conditioning.tokens import ModalityTokens
from audiox_turbo.conditioning.video import VideoConditioner

__all__ = [
    "AUDIO_MODES",
    "AudioPromptConditioner",
    "Conditioner",
    "Conditions",
    "ModalityTokens",
    "MultimodalAdaptiveFusion",
    "TextConditioner",
    "VideoConditioner",
    "audio_keep_mask",
    "condition_dropout",
]
