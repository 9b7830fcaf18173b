"""Sound effects: one renderer per class, each returning the waveform and its exact event times."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from audiox_turbo.data.world.instruments import bell as bell_note
from audiox_turbo.data.world.synth import (
    band_noise,
    bandpass,
    clamp_hz,
    exp_decay,
    n_samples,
    normalize_peak,
    place,
    resonator,
    rms,
    time_axis,
)


@dataclass
class Effect:
    """A rendered effect: mono waveform (samples,) and event onsets in seconds (sample-exact)."""

    audio: np.ndarray
    events: list[float] = field(default_factory=list)
    details: dict[str, float | str] = field(default_factory=dict)


def _event_starts(
    rng: np.random.Generator, duration: float, sample_rate: int, rate: float, min_gap: float
) -> list[int]:
    """Sample indices of a Poisson-like event stream (mean `rate` per second, gaps >= min_gap)."""
    starts, t = [], float(rng.uniform(0.05, 0.5))
    while t < duration - 0.15:
        starts.append(n_samples(t, sample_rate))
        t += min_gap + float(rng.exponential(max(1.0 / rate - min_gap, 1e-3)))
    return starts


def _times(starts: list[int], sample_rate: int) -> list[float]:
    return [s / sample_rate for s in starts]


def impact_sound(rng: np.random.Generator, sample_rate: int, strength: float) -> np.ndarray:
    """A thud: low-passed noise burst over a decaying 70-110 Hz body, scaled by strength (0-1]."""
    n = n_samples(0.3, sample_rate)
    t = time_axis(n, sample_rate)
    body = np.sin(2 * np.pi * float(rng.uniform(70.0, 110.0)) * t) * exp_decay(n, sample_rate, 0.06)
    burst = band_noise(rng, n, sample_rate, None, 2500.0) * exp_decay(n, sample_rate, 0.012, 0.0005)
    return strength * (0.8 * body + 2.0 * burst)


def beep_tone(freq: float, length: float, sample_rate: int) -> np.ndarray:
    """A sine beep with 3 ms fades."""
    n = n_samples(length, sample_rate)
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.003 * sample_rate))
    return 0.6 * np.sin(2 * np.pi * freq * time_axis(n, sample_rate)) * fade


def engine_source(
    rng: np.random.Generator, n: int, sample_rate: int, firing_hz: np.ndarray
) -> np.ndarray:
    """Engine: harmonics of the (time-varying) firing frequency, rough from noise modulation."""
    phase = 2 * np.pi * np.cumsum(firing_hz) / sample_rate
    tone = np.zeros(n)
    for k, a in ((1, 1.0), (2, 0.6), (3, 0.4), (4, 0.25), (6, 0.15)):
        tone += a * np.sin(k * phase)
    rough = 1.0 + 0.3 * bandpass(rng.standard_normal(n), sample_rate, None, 40.0)
    return tone * rough + 0.2 * band_noise(rng, n, sample_rate, 100.0, 1500.0)


def impact(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """Objects dropping on a floor: irregular thuds."""
    out = np.zeros(n_samples(duration, sample_rate))
    starts = _event_starts(rng, duration, sample_rate, 1.0, 0.3)
    for s in starts:
        place(out, impact_sound(rng, sample_rate, float(rng.uniform(0.4, 1.0))), s)
    return Effect(out, _times(starts, sample_rate))


def knock(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """Knocking on a door: groups of 2-4 knocks."""
    out = np.zeros(n_samples(duration, sample_rate))
    n = n_samples(0.12, sample_rate)
    wood = float(rng.uniform(180.0, 400.0))
    starts: list[int] = []
    t = float(rng.uniform(0.1, 0.6))
    while t < duration - 0.6:
        for _ in range(int(rng.integers(2, 5))):
            if t < duration - 0.15:
                starts.append(n_samples(t, sample_rate))
            t += float(rng.uniform(0.15, 0.25))
        t += float(rng.uniform(0.6, 1.5))
    for s in starts:
        burst = rng.standard_normal(n) * exp_decay(n, sample_rate, 0.004, 0.0005)
        hit = resonator(burst, sample_rate, wood, 60.0) + 0.3 * bandpass(
            burst, sample_rate, 800, None
        )
        place(out, hit, s, float(rng.uniform(0.7, 1.0)))
    return Effect(out, _times(starts, sample_rate), {"material": "wood"})


def footsteps(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """Walking: regular heel-toe steps at 1.5-2.5 steps per second."""
    out = np.zeros(n_samples(duration, sample_rate))
    pace = float(rng.uniform(1.5, 2.5))
    starts = [
        n_samples(t, sample_rate)
        for t in np.arange(float(rng.uniform(0.1, 0.4)), duration, 1 / pace)
    ]
    starts = [s for s in starts if s < n_samples(duration - 0.1, sample_rate)]
    n = n_samples(0.1, sample_rate)
    for s in starts:
        heel = band_noise(rng, n, sample_rate, 100.0, 1200.0) * exp_decay(n, sample_rate, 0.015)
        toe = band_noise(rng, n, sample_rate, 300.0, 3000.0) * exp_decay(n, sample_rate, 0.01)
        place(out, heel, s, float(rng.uniform(0.8, 1.0)))
        place(out, toe, s + n_samples(0.05, sample_rate), 0.5)
    return Effect(out, _times(starts, sample_rate), {"steps_per_second": round(pace, 2)})


def engine(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """An idling then revving engine: firing frequency ramps between 25 and 70 Hz."""
    n = n_samples(duration, sample_rate)
    t = time_axis(n, sample_rate)
    idle, rev = float(rng.uniform(25.0, 35.0)), float(rng.uniform(45.0, 70.0))
    t_rev = float(rng.uniform(0.2, 0.6)) * duration
    firing = idle + (rev - idle) / (1.0 + np.exp(-(t - t_rev) / 0.25))
    return Effect(engine_source(rng, n, sample_rate, firing), [], {"rev_time": round(t_rev, 3)})


def siren(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """Emergency siren: a wail sweeping 600-1400 Hz or a two-tone hi-lo."""
    n = n_samples(duration, sample_rate)
    t = time_axis(n, sample_rate)
    if rng.random() < 0.5:
        style, period = "wail", float(rng.uniform(1.5, 3.0))
        freq = 1000.0 + 400.0 * np.sin(2 * np.pi * t / period)
    else:
        style, period = "hi-lo", float(rng.uniform(0.8, 1.4))
        freq = np.where((t % period) < period / 2, 960.0, 770.0)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    tone = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
    return Effect(tone, [], {"style": style, "period": round(period, 3)})


def rain(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """Rain: dense tiny drop clicks over broadband hiss."""
    n = n_samples(duration, sample_rate)
    hiss = 0.3 * band_noise(rng, n, sample_rate, 400.0, 6000.0)
    drops = np.zeros(n)
    count = int(rng.uniform(80, 200) * duration)
    drops[rng.integers(0, n, count)] = rng.uniform(-1.0, 1.0, count)
    drops = bandpass(drops, sample_rate, 1500.0, None)
    return Effect(hiss + 2.0 * drops, [], {"intensity": round(count / duration, 1)})


def wind(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """Wind: low-passed noise whose level swells in slow gusts."""
    n = n_samples(duration, sample_rate)
    gusts = bandpass(rng.standard_normal(n), sample_rate, None, 0.7)
    gusts = 0.4 + np.abs(gusts) / (np.max(np.abs(gusts)) + 1e-9)
    noise = band_noise(rng, n, sample_rate, 80.0, 900.0)
    whistle = 0.1 * resonator(rng.standard_normal(n), sample_rate, float(rng.uniform(500, 900)), 30)
    return Effect(gusts * (noise + whistle), [])


def bell(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """A bell struck 1-4 times."""
    out = np.zeros(n_samples(duration, sample_rate))
    pitch = float(rng.uniform(300.0, 900.0))
    count = int(rng.integers(1, 5))
    gap = duration / (count + 0.5)
    starts = [n_samples(0.1 + i * gap, sample_rate) for i in range(count)]
    for s in starts:
        place(out, bell_note(pitch, 1.5, 1.0, sample_rate, rng), s)
    return Effect(out, _times(starts, sample_rate), {"pitch_hz": round(pitch, 1)})


def clock_tick(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """A clock: alternating tick and tock clicks exactly once per second each (2 per second)."""
    out = np.zeros(n_samples(duration, sample_rate))
    first = float(rng.uniform(0.05, 0.5))
    starts = [n_samples(t, sample_rate) for t in np.arange(first, duration - 0.05, 0.5)]
    n = n_samples(0.03, sample_rate)
    for i, s in enumerate(starts):
        click = rng.standard_normal(n) * exp_decay(n, sample_rate, 0.002, 0.0002)
        tone = 3000.0 if i % 2 == 0 else 2400.0
        place(out, resonator(click, sample_rate, tone, 200.0), s)
    return Effect(out, _times(starts, sample_rate), {"ticks_per_second": 2.0})


BEEP_TONES_HZ = (800.0, 1000.0, 1200.0, 1600.0, 2000.0)
"""An alarm's tone frequencies, equally likely: the modes of every beeps prompt that names none."""


def beep_pattern(
    rng: np.random.Generator, duration: float, sample_rate: int
) -> tuple[list[tuple[int, int]], float]:
    """An alarm's beeps as (start sample, length in samples) and its tone frequency."""
    freq = float(rng.choice(BEEP_TONES_HZ))
    on = float(rng.uniform(0.08, 0.3))
    period = on + float(rng.uniform(0.1, 0.5))
    first = float(rng.uniform(0.05, 0.4))
    beeps = [
        (n_samples(t, sample_rate), n_samples(on, sample_rate))
        for t in np.arange(first, duration - on, period)
    ]
    return beeps, freq


def beeps(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """An alarm: evenly spaced sine beeps."""
    out = np.zeros(n_samples(duration, sample_rate))
    pattern, freq = beep_pattern(rng, duration, sample_rate)
    for start, length in pattern:
        place(out, beep_tone(freq, length / sample_rate, sample_rate), start)
    return Effect(out, _times([s for s, _ in pattern], sample_rate), {"tone_hz": freq})


def water_drip(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """Water dripping: short upward bubble chirps at irregular intervals."""
    out = np.zeros(n_samples(duration, sample_rate))
    starts = _event_starts(rng, duration, sample_rate, 2.0, 0.2)
    n = n_samples(0.06, sample_rate)
    t = time_axis(n, sample_rate)
    for s in starts:
        f0 = float(rng.uniform(600.0, 1500.0))
        freq = clamp_hz(f0 * (1.0 + 8.0 * t), sample_rate)
        chirp = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate) * exp_decay(n, sample_rate, 0.015)
        place(out, chirp, s, float(rng.uniform(0.5, 1.0)))
    return Effect(out, _times(starts, sample_rate))


def applause(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """Applause: hundreds of band-passed claps whose density swells and fades."""
    n = n_samples(duration, sample_rate)
    out = np.zeros(n)
    clap_n = n_samples(0.02, sample_rate)
    count = int(rng.uniform(40, 90) * duration)
    times = np.sort(rng.beta(2.0, 2.0, count)) * duration
    for t in times:
        clap = band_noise(rng, clap_n, sample_rate, 800.0, 3500.0)
        place(out, clap * exp_decay(clap_n, sample_rate, 0.006, 0.0005), n_samples(t, sample_rate))
    return Effect(out, [], {"claps_per_second": round(count / duration, 1)})


def thunder(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """Thunder: a sharp crack followed by a long low rumble."""
    n = n_samples(duration, sample_rate)
    start = n_samples(float(rng.uniform(0.1, 0.3)) * duration, sample_rate)
    length = n - start
    crack = band_noise(rng, length, sample_rate, 500.0, None) * exp_decay(length, sample_rate, 0.08)
    rumble = band_noise(rng, length, sample_rate, 30.0, 250.0) * exp_decay(
        length, sample_rate, float(rng.uniform(0.8, 2.0)), 0.15
    )
    out = np.zeros(n)
    place(out, 0.5 * crack + 3.0 * rumble, start)
    return Effect(out, [start / sample_rate])


def bird_chirps(rng: np.random.Generator, duration: float, sample_rate: int) -> Effect:
    """Birdsong: fast frequency sweeps between 2 and 6 kHz in short phrases."""
    out = np.zeros(n_samples(duration, sample_rate))
    starts = _event_starts(rng, duration, sample_rate, 3.0, 0.12)
    for s in starts:
        n = n_samples(float(rng.uniform(0.04, 0.12)), sample_rate)
        t = time_axis(n, sample_rate)
        lo, hi = sorted(rng.uniform(2000.0, 6000.0, 2))
        sweep = lo + (hi - lo) * np.abs(np.sin(np.pi * t / t[-1] * float(rng.uniform(1, 3))))
        freq = clamp_hz(sweep, sample_rate)
        window = np.sin(np.pi * np.arange(n) / n) ** 2
        place(out, np.sin(2 * np.pi * np.cumsum(freq) / sample_rate) * window, s)
    return Effect(out, _times(starts, sample_rate))


EFFECTS: dict[str, Callable[[np.random.Generator, float, int], Effect]] = {
    "impact": impact,
    "knock": knock,
    "footsteps": footsteps,
    "engine": engine,
    "siren": siren,
    "rain": rain,
    "wind": wind,
    "bell": bell,
    "clock tick": clock_tick,
    "beeps": beeps,
    "water drip": water_drip,
    "applause": applause,
    "thunder": thunder,
    "bird chirps": bird_chirps,
}
"""Sound-effect classes by the name used in labels and captions."""

AMBIENCES: dict[str, tuple[str, ...]] = {
    "outdoors": ("wind", "bird chirps"),
    "rainy street": ("rain", "engine"),
    "stormy night": ("rain", "wind"),
    "room tone": (),
}
"""Background ambiences and the effect classes they are built from (room tone: faint hum)."""


def ambience(rng: np.random.Generator, name: str, duration: float, sample_rate: int) -> np.ndarray:
    """A background bed for `name`, normalised to unit RMS, shape (samples,)."""
    n = n_samples(duration, sample_rate)
    bed = 0.3 * band_noise(rng, n, sample_rate, 50.0, 400.0)
    bed += 0.2 * np.sin(2 * np.pi * 50.0 * time_axis(n, sample_rate))
    for part in AMBIENCES[name]:
        sound = EFFECTS[part](rng, duration, sample_rate).audio
        bed += sound / max(rms(sound), 1e-9)
    return bed / max(rms(bed), 1e-9)


def render_effect(
    rng: np.random.Generator,
    name: str,
    duration: float,
    sample_rate: int,
    background: str | None,
    background_db: float = -18.0,
) -> Effect:
    """Effect `name` with an optional background ambience `background_db` below its RMS."""
    effect = EFFECTS[name](rng, duration, sample_rate)
    audio = effect.audio
    if background is not None:
        bed = ambience(rng, background, duration, sample_rate)
        audio = audio + bed * rms(audio) * 10.0 ** (background_db / 20.0)
    return Effect(normalize_peak(audio), effect.events, effect.details)
