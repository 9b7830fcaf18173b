"""Video scenes whose visual events cause their sounds; frame k shows the world at time k/fps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audiox_turbo.data.world import music, voice
from audiox_turbo.data.world.canvas import blank, disc, ellipse, rectangle
from audiox_turbo.data.world.effects import beep_pattern, beep_tone, engine_source, impact_sound
from audiox_turbo.data.world.synth import n_samples, normalize_peak, place

SPEED_OF_SOUND = 343.0
BALL_COLOR = (220, 40, 40)
FLOOR_COLOR = (120, 120, 120)
BACKGROUND = (30, 30, 45)


@dataclass
class SceneClip:
    """A rendered scene: audio (samples,), frames (n, size, size, 3) uint8 and its label facts."""

    audio: np.ndarray
    frames: np.ndarray
    facts: dict[str, Any] = field(default_factory=dict)


def floor_row(size: int) -> int:
    """Row of the bouncing-ball scene's floor surface (the ball touches it from above)."""
    return size - size // 8


def ball_contacts(
    rng: np.random.Generator, duration: float, gravity: float, heights: tuple[float, float]
) -> tuple[float, list[tuple[float, float, float]]]:
    """Drop height and [(contact time s, speed in, speed out px/s)]: restitution 0.7-0.9, and a
    kick back up to `heights` whenever a bounce would fall below heights[0]/2 (keeps bounces
    apart so every contact is a separate event)."""
    h0 = float(rng.uniform(*heights))
    restitution = float(rng.uniform(0.7, 0.9))
    t = float(np.sqrt(2 * h0 / gravity))
    v_in = gravity * t
    contacts = []
    while t < duration:
        v_out = restitution * v_in
        if v_out**2 / (2 * gravity) < heights[0] / 2:
            v_out = float(np.sqrt(2 * gravity * rng.uniform(*heights)))
        contacts.append((t, v_in, v_out))
        t += 2 * v_out / gravity
        v_in = v_out
    return h0, contacts


def _ball_height(
    times: np.ndarray, h0: float, contacts: list[tuple[float, float, float]], gravity: float
) -> np.ndarray:
    """Height (px above contact) at each time: a fall from h0, then parabolas between contacts."""
    starts = np.array([c for c, _, _ in contacts])
    k = np.searchsorted(starts, times, side="right") - 1
    fall = h0 - 0.5 * gravity * times**2
    t_c = np.where(k >= 0, starts[np.maximum(k, 0)], 0.0)
    v_out = np.array([v for _, _, v in contacts])[np.maximum(k, 0)]
    dt = times - t_c
    flight = v_out * dt - 0.5 * gravity * dt**2
    return np.maximum(np.where(k >= 0, flight, fall), 0.0)


def ball_scene(
    rng: np.random.Generator, duration: float, sample_rate: int, fps: int, size: int
) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """Frames of a ball bouncing on a floor and its floor contacts [(time s on the sample grid,
    speed in, speed out)]."""
    scale = size / 128.0
    radius, gravity = 8.0 * scale, 900.0 * scale
    floor = floor_row(size)
    heights = (45.0 * scale, floor - 2 * radius - 6.0 * scale)
    h0, contacts = ball_contacts(rng, duration, gravity, heights)
    contacts = [(round(t * sample_rate) / sample_rate, vi, vo) for t, vi, vo in contacts]
    n_frames = n_samples(duration, fps)
    times = np.arange(n_frames) / fps
    height = _ball_height(times, h0, contacts, gravity)
    vx = float(rng.uniform(20.0, 50.0)) * scale * float(rng.choice([-1.0, 1.0]))
    span = size - 2 * radius
    x = np.abs((float(rng.uniform(0, span)) + vx * times) % (2 * span) - span) + radius
    frames = blank(n_frames, size, BACKGROUND)
    for k in range(n_frames):
        rectangle(frames[k], floor, 0, size, size, FLOOR_COLOR)
        disc(frames[k], floor - radius - height[k], x[k], radius, BALL_COLOR)
    return frames, contacts


def bouncing_ball(
    rng: np.random.Generator, duration: float, sample_rate: int, fps: int, size: int
) -> SceneClip:
    """A ball bouncing on a floor; each floor contact makes a thud at exactly that time."""
    frames, contacts = ball_scene(rng, duration, sample_rate, fps, size)
    audio = np.zeros(n_samples(duration, sample_rate))
    top_speed = max(v for _, v, _ in contacts)
    events = []
    for t, v, _ in contacts:
        if t < duration - 0.05:
            strength = 0.3 + 0.7 * v / top_speed
            place(audio, impact_sound(rng, sample_rate, strength), round(t * sample_rate))
            events.append(t)
    return SceneClip(
        normalize_peak(audio),
        frames,
        {"category": "sfx", "class": "impact", "event_times": events},
    )


def flashing_lamp(
    rng: np.random.Generator, duration: float, sample_rate: int, fps: int, size: int
) -> SceneClip:
    """A lamp that lights up exactly while each alarm beep sounds."""
    pattern, freq = beep_pattern(rng, duration, sample_rate)
    audio = np.zeros(n_samples(duration, sample_rate))
    for start, length in pattern:
        place(audio, beep_tone(freq, length / sample_rate, sample_rate), start)
    n_frames = n_samples(duration, fps)
    frames = blank(n_frames, size, BACKGROUND)
    sample_at_frame = np.arange(n_frames) * sample_rate / fps
    cy, cx, r = size * 0.4, size * 0.5, size * 0.18
    for k in range(n_frames):
        lit = any(s <= sample_at_frame[k] < s + n for s, n in pattern)
        rectangle(frames[k], int(cy + r), int(cx - 3), size - 10, int(cx + 3), (90, 90, 90))
        disc(frames[k], cy, cx, r, (255, 230, 80) if lit else (70, 60, 30))
    events = [s / sample_rate for s, _ in pattern]
    return SceneClip(
        normalize_peak(audio),
        frames,
        {"category": "sfx", "class": "beeps", "event_times": events, "tone_hz": freq},
    )


WHITE_KEY_STEPS = (0, 2, 4, 5, 7, 9, 11)
KEYBOARD_LOW = 60
"""The keyboard shows two octaves from middle C (MIDI 60-83)."""


def _key_geometry(midi: int, size: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a key of the two-octave keyboard."""
    white_w = size // 14
    octave, step = divmod(midi - KEYBOARD_LOW, 12)
    top, bottom = size // 3, size - size // 6
    if step in WHITE_KEY_STEPS:
        left = (7 * octave + WHITE_KEY_STEPS.index(step)) * white_w
        return top, left + 1, bottom, left + white_w
    left = (7 * octave + WHITE_KEY_STEPS.index(step - 1) + 1) * white_w - white_w // 3
    return top, left, top + (bottom - top) * 3 // 5, left + 2 * (white_w // 3)


def keyboard_frames(
    notes: tuple[music.Note, ...], duration: float, fps: int, size: int
) -> np.ndarray:
    """Frames of a two-octave keyboard whose keys light up while their notes sound."""
    n_frames = n_samples(duration, fps)
    frames = blank(n_frames, size, BACKGROUND)
    keys = range(KEYBOARD_LOW, KEYBOARD_LOW + 24)
    whites = [m for m in keys if (m - KEYBOARD_LOW) % 12 in WHITE_KEY_STEPS]
    blacks = [m for m in keys if m not in whites]
    for k in range(n_frames):
        t = k / fps
        lit = {n.midi for n in notes if n.onset <= t < n.onset + n.held}
        for m in whites + blacks:
            base = (235, 235, 235) if m in whites else (20, 20, 20)
            rectangle(frames[k], *_key_geometry(m, size), (60, 170, 255) if m in lit else base)
    return frames


def keyboard(
    rng: np.random.Generator, duration: float, sample_rate: int, fps: int, size: int
) -> SceneClip:
    """A piano keyboard whose keys light up while their notes sound."""
    texture = str(rng.choice(["melody", "chords", "arpeggio"]))
    piece = music.compose(
        rng, duration, sample_rate, texture, ("piano",), (KEYBOARD_LOW, KEYBOARD_LOW + 23)
    )
    audio = music.render(piece, duration, sample_rate, rng)
    return SceneClip(audio, keyboard_frames(piece.notes, duration, fps, size), _music_facts(piece))


def _music_facts(piece: music.Piece) -> dict[str, Any]:
    return {
        "category": "music",
        "class": piece.instruments[0],
        "instruments": list(piece.instruments),
        "tempo": piece.tempo,
        "key": piece.key,
        "mode": piece.mode,
        "texture": piece.texture,
        "event_times": piece.onsets,
    }


def face_frames(
    audio: np.ndarray, duration: float, sample_rate: int, fps: int, size: int
) -> np.ndarray:
    """Frames of a face whose mouth opens with the audio's energy around each frame time."""
    n_frames = n_samples(duration, fps)
    half = sample_rate // (2 * fps)
    padded = np.pad(audio, (half, half))
    centres = np.round(np.arange(n_frames) * sample_rate / fps).astype(int) + half
    energy = np.array([np.sqrt(np.mean(padded[c - half : c + half] ** 2)) for c in centres])
    opening = np.clip(energy / max(float(energy.max()), 1e-9), 0.0, 1.0)
    frames = blank(n_frames, size, BACKGROUND)
    c = size / 2
    for k in range(n_frames):
        disc(frames[k], c, c, size * 0.42, (230, 190, 150))
        disc(frames[k], c - size * 0.12, c - size * 0.15, size * 0.05, (40, 40, 40))
        disc(frames[k], c - size * 0.12, c + size * 0.15, size * 0.05, (40, 40, 40))
        ry = size * (0.015 + 0.12 * opening[k])
        ellipse(frames[k], c + size * 0.18, c, ry, size * 0.16, (120, 20, 30))
    return frames


def talking_mouth(
    rng: np.random.Generator, duration: float, sample_rate: int, fps: int, size: int
) -> SceneClip:
    """A face whose mouth opens with the voice's energy around each frame time."""
    utterance = voice.speak(rng, duration, sample_rate)
    return SceneClip(
        utterance.audio,
        face_frames(utterance.audio, duration, sample_rate, fps, size),
        {
            "category": "speech",
            "class": "speech",
            "event_times": utterance.events,
            "speaker": utterance.speaker.labels(),
        },
    )


def vehicle_crossing(
    rng: np.random.Generator,
    duration: float,
    sample_rate: int,
    fps: int,
    size: int,
    engine: Callable[[np.random.Generator, int, int], np.ndarray] | None = None,
) -> SceneClip:
    """A car driving past the listener: the engine sound rises in pitch and level as it comes,
    falls as it goes (Doppler: received at t what was emitted at t - distance/c). `engine`
    renders n samples of the car's engine (default: the synthetic engine)."""
    speed = float(rng.uniform(10.0, 25.0))
    closest = float(rng.uniform(3.0, 8.0))
    t_pass = round(float(rng.uniform(0.35, 0.65)) * duration * sample_rate) / sample_rate
    direction = float(rng.choice([-1.0, 1.0]))
    view_m = speed * float(rng.uniform(2.0, 3.0))
    n = n_samples(duration, sample_rate)
    t = np.arange(n) / sample_rate
    distance = np.hypot(direction * speed * (t - t_pass), closest)
    emitted = t - distance / SPEED_OF_SOUND
    lead = n_samples(distance.max() / SPEED_OF_SOUND + 0.05, sample_rate)
    grid = (np.arange(n + lead) - lead) / sample_rate
    if engine is None:
        firing = np.full(n + lead, float(rng.uniform(35.0, 55.0)))
        source = engine_source(rng, n + lead, sample_rate, firing)
    else:
        source = engine(rng, n + lead, sample_rate)
    audio = np.interp(emitted, grid, source) * closest / distance
    n_frames = n_samples(duration, fps)
    frames = blank(n_frames, size, (110, 160, 210))
    road = int(size * 0.6)
    for k in range(n_frames):
        rectangle(frames[k], road, 0, size, size, (70, 70, 70))
        x_m = direction * speed * (k / fps - t_pass)
        cx = size / 2 + x_m / view_m * size
        rectangle(frames[k], road - 20, int(cx - 18), road - 4, int(cx + 18), (200, 30, 30))
        rectangle(frames[k], road - 30, int(cx - 10), road - 19, int(cx + 8), (180, 210, 240))
        disc(frames[k], road - 4, cx - 11, 5, (20, 20, 20))
        disc(frames[k], road - 4, cx + 11, 5, (20, 20, 20))
    return SceneClip(
        normalize_peak(audio),
        frames,
        {
            "category": "sfx",
            "class": "engine",
            "event_times": [t_pass],
            "speed_mps": round(speed, 2),
            "closest_m": round(closest, 2),
            "direction": "left to right" if direction > 0 else "right to left",
        },
    )


SCENES: dict[str, Callable[[np.random.Generator, float, int, int, int], SceneClip]] = {
    "bouncing ball": bouncing_ball,
    "flashing lamp": flashing_lamp,
    "keyboard": keyboard,
    "talking mouth": talking_mouth,
    "vehicle crossing": vehicle_crossing,
}
"""Scenes by the name used in labels and captions."""
