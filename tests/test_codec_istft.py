"""The iSTFT VAE: STFT/iSTFT pair, shapes, determinism, chunked decode, config and model dir
round trips, bad configs, and a short training run through the codec task."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from audiox_turbo.codec import IstftVAE, OobleckVAE, build_codec
from audiox_turbo.codec.istft import IstftDecoder
from audiox_turbo.codec.spectral import istft_same, peak_locked_phase, stft_same
from audiox_turbo.config import CodecConfig, ModelConfig, from_dict, preset, to_dict
from audiox_turbo.data.dataset import collate
from audiox_turbo.errors import ModelLoadError
from audiox_turbo.model_dir import load_native_components, native_components, save_model_dir
from audiox_turbo.train.codec import CodecTask
from audiox_turbo.train.losses import mel_distance
from audiox_turbo.train.run_config import CodecTrainingConfig, TrainConfig
from audiox_turbo.train.trainer import Trainer

TINY_ISTFT = CodecConfig(
    kind="istft",
    sample_rate=16000,
    audio_channels=1,
    channels=16,
    latent_dim=8,
    n_fft=128,
    hop_length=32,
    frames_per_latent=2,
    encoder_layers=1,
    decoder_layers=2,
)
MODEL = dataclasses.replace(preset("tiny"), codec=TINY_ISTFT)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(("n_fft", "hop"), [(1024, 256), (128, 32), (512, 160), (64, 48)])
def test_stft_pair_reconstructs_perfectly_in_float64(n_fft: int, hop: int) -> None:
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(3, 17 * hop, generator=g, dtype=torch.float64)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    spec = stft_same(wav, n_fft, hop, window)
    assert spec.shape == (3, n_fft // 2 + 1, 17)
    torch.testing.assert_close(istft_same(spec, n_fft, hop, window), wav, rtol=0, atol=1e-12)


def test_stft_frames_match_a_float64_reference() -> None:
    n_fft, hop = 64, 16
    wav = torch.randn(1, 8 * hop, dtype=torch.float64)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    padded = torch.nn.functional.pad(wav, (24, 24))[0]
    frame = 5
    expected = torch.fft.rfft(padded[frame * hop : frame * hop + n_fft] * window)
    torch.testing.assert_close(stft_same(wav, n_fft, hop, window)[0, :, frame], expected)


def test_shapes_and_exact_lengths() -> None:
    torch.manual_seed(0)
    vae = IstftVAE(TINY_ISTFT).eval()
    ds = TINY_ISTFT.downsampling
    assert ds == 64 and TINY_ISTFT.latent_rate == 250.0
    wav = 0.3 * torch.randn(2, 1, 5 * ds + 7)  # right-padded to 6 frames
    with torch.no_grad():
        mean, std = vae.encode_posterior(wav)
        z = vae.encode(wav)
        out = vae.decode(z)
    assert (
        mean.shape
        == std.shape
        == z.shape
        == (2, 8, 6)
        == (2, 8, TINY_ISTFT.latent_frames(wav.shape[-1]))
    )
    assert out.shape == (2, 1, 6 * ds)
    assert bool((std > 1e-4).all()) and bool(out.isfinite().all())
    with pytest.raises(ValueError, match="expected a waveform"):
        vae.encode(torch.zeros(1, 2, 256))


def test_stereo_shapes() -> None:
    cfg = dataclasses.replace(TINY_ISTFT, audio_channels=2)
    vae = IstftVAE(cfg).eval()
    with torch.no_grad():
        out = vae.decode(vae.encode(torch.randn(1, 2, 640), sample=False))
    assert out.shape == (1, 2, 640)


def test_deterministic_in_seed_and_input() -> None:
    def build(seed: int) -> IstftVAE:
        torch.manual_seed(seed)
        return IstftVAE(TINY_ISTFT).eval()

    a, b, c = build(3), build(3), build(4)
    wav = 0.3 * torch.randn(1, 1, 640)
    with torch.no_grad():
        za, zb, zc = (m.encode(wav, sample=False) for m in (a, b, c))
        assert torch.equal(za, zb) and not torch.equal(za, zc)
        assert torch.equal(a.decode(za), a.decode(za)) and torch.equal(a.decode(za), b.decode(zb))
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        assert torch.equal(a.encode(wav, generator=g1), a.encode(wav, generator=g2))


def test_chunked_decode_equals_decode() -> None:
    torch.manual_seed(0)
    vae = IstftVAE(TINY_ISTFT).eval()
    latents = torch.randn(1, 8, 70)
    with torch.no_grad():
        whole = vae.decode(latents)
        chunked = vae.decode_chunked(latents, chunk_frames=16, overlap_frames=8)
        cut = vae.decode_chunked(latents, chunk_frames=16, overlap_frames=0)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(cut, whole, atol=1e-5)  # without context the seams differ


def test_build_codec_dispatches_on_kind_and_codecs_check_it() -> None:
    assert isinstance(build_codec(TINY_ISTFT), IstftVAE)
    assert isinstance(build_codec(preset("tiny").codec), OobleckVAE)
    with pytest.raises(ValueError, match="kind 'istft'"):
        IstftVAE(preset("tiny").codec)
    with pytest.raises(ValueError, match="kind 'oobleck'"):
        OobleckVAE(TINY_ISTFT)


def test_config_round_trip_and_old_configs_default_to_oobleck() -> None:
    data = to_dict(MODEL)
    assert data["codec"]["kind"] == "istft"
    assert from_dict(ModelConfig, data) == MODEL
    old = to_dict(preset("tiny"))
    for key in ("kind", "n_fft", "hop_length", "frames_per_latent", "encoder_layers"):
        del old["codec"][key]
    assert from_dict(ModelConfig, old).codec.kind == "oobleck"
    assert from_dict(ModelConfig, old) == preset("tiny")


@pytest.mark.parametrize(
    ("codec", "message"),
    [
        ({"kind": "wavenet"}, "codec: kind: expected one of oobleck, istft, mel, got 'wavenet'"),
        ({"kind": "istft", "n_fft": 256, "hop_length": 256}, "codec: n_fft: must be even"),
        ({"kind": "istft", "n_fft": 256, "hop_length": 97}, "codec: hop_length: n_fft - hop"),
        ({"kind": "istft", "frames_per_latent": 0}, "codec: frames_per_latent: must be >= 1"),
        ({"kind": "istft", "hop_lenght": 128}, "did you mean 'codec.hop_length'"),
        ({"kind": "istft", "n_fft": "1024"}, "codec.n_fft: expected int"),
    ],
)
def test_bad_codec_config_is_one_line_error(tmp_path: Path, codec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_dict(ModelConfig, {"codec": codec})
    (tmp_path / "config.json").write_text(json.dumps({"codec": codec}))
    from audiox_turbo.model_dir import read_model_config

    with pytest.raises(ModelLoadError) as info:
        read_model_config(tmp_path)
    assert "config.json: invalid config" in str(info.value) and "\n" not in str(info.value)


def test_model_dir_round_trip(tmp_path: Path) -> None:
    components = native_components(MODEL, seed=5)
    assert isinstance(components["codec"], IstftVAE)
    save_model_dir(tmp_path / "m", MODEL, components)
    config, loaded = load_native_components(tmp_path / "m")
    assert config == MODEL and isinstance(loaded["codec"], IstftVAE)
    latents = torch.randn(1, 8, 12)
    with torch.no_grad():
        expected = components["codec"].eval().decode(latents)
        torch.testing.assert_close(loaded["codec"].eval().decode(latents), expected)


class BandsDataset(torch.utils.data.Dataset):
    """Two fixed clips with dense, disjoint spectra: low-passed and high-passed noise."""

    def __init__(self, samples: int = 2048) -> None:
        noise = torch.randn(2, samples + 1, generator=torch.Generator().manual_seed(0))
        low = torch.nn.functional.avg_pool1d(noise[:1, None], 16, 1, 8)[0, :, :samples] * 2
        high = (noise[1:, 1:] - noise[1:, :-1]) * 0.2
        self.audio = torch.stack([low, high])

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict:
        audio = self.audio[i]
        return {
            "audio": audio,
            "audio_mask": torch.ones(audio.shape[-1], dtype=torch.bool),
            "text": "",
            "tasks": "t2a",
            "video": None,
            "video_mask": None,
            "prompt_audio": None,
            "prompt_mask": None,
            "text_present": True,
            "audio_prompt_present": False,
        }


def _two_clip_run(steps: int) -> TrainConfig:
    """Batch 2 of `BandsDataset`, lr 3e-3 constant, nothing logged or checkpointed."""
    return TrainConfig(
        batch_size=2,
        lr=3e-3,
        warmup_steps=0,
        schedule="constant",
        max_steps=steps,
        checkpoint_every=0,
        log_every=0,
        sample_every=0,
        num_workers=0,
        ema_warmup=0,
    )


def test_training_steps_reduce_the_loss_and_latents_carry_the_clip(tmp_path: Path) -> None:
    """STFT + L1 + KL + log-mel through the codec task and the trainer: the loss falls >= 1.5x
    in 200 steps (measured 9.97 -> 5.30), and each clip's reconstruction is closer to its own
    clip than to the other one (the decoder uses the latents, not an average spectrum)."""
    settings = CodecTrainingConfig(
        stft_fft_sizes=(512, 128, 32), mel_weight=1.0, adversarial_start=10**9, validation_clips=0
    )
    task = CodecTask(MODEL, settings)
    task.export = lambda directory, ctx: None
    train = _two_clip_run(200)
    data = BandsDataset()
    Trainer(task, train, tmp_path, data, collate, progress=False, cpu=True).fit()
    lines = (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if "codec/loss" in r]
    assert all("codec/mel" in r for r in records)
    losses = [r["codec/loss"] for r in records]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first / 1.3, (first, last)
    with torch.no_grad():
        recon = task.vae.eval().decode(task.vae.encode(data.audio, sample=False))
    own = [float(mel_distance(recon[i : i + 1], data.audio[i : i + 1], 16000)) for i in (0, 1)]
    swapped = [
        float(mel_distance(recon[i : i + 1], data.audio[1 - i : 2 - i], 16000)) for i in (0, 1)
    ]
    assert own[0] < swapped[0] and own[1] < swapped[1], (own, swapped)


def test_phase_integration_inverts_the_analysis_of_any_signal() -> None:
    """Given the true log-magnitudes and phase advances (ψ = 0), the decoder's synthesis
    (Σ(ω_k·hop + δ) then the inverse STFT) returns the signal: the head can express any sound."""
    cfg = dataclasses.replace(TINY_ISTFT, istft_phase="learned")
    decoder = IstftDecoder(cfg)
    g = torch.Generator().manual_seed(0)
    wav = 0.3 * torch.randn(1, 32 * cfg.hop_length, generator=g, dtype=torch.float64)
    spec = stft_same(wav, cfg.n_fft, cfg.hop_length, torch.hann_window(cfg.n_fft).double())[0]
    phase = spec.angle()
    centre = 2 * math.pi * cfg.hop_length / cfg.n_fft * torch.arange(spec.shape[0]).double()
    previous = torch.cat([torch.zeros_like(phase[:, :1]), phase[:, :-1]], dim=1)
    advance = torch.remainder(phase - previous - centre[:, None] + math.pi, 2 * math.pi) - math.pi
    parameters = torch.cat([spec.abs().clamp_min(1e-12).log(), advance, torch.zeros_like(phase)])
    out = decoder.synthesise(parameters[None].float())
    torch.testing.assert_close(out[0].double(), wav, rtol=0, atol=2e-4)


def test_pipeline_generates_through_the_istft_codec(tmp_path: Path) -> None:
    from audiox_turbo import load

    save_model_dir(tmp_path / "m", MODEL, native_components(MODEL, seed=1))
    pipe = load(tmp_path / "m")
    assert isinstance(pipe.codec, IstftVAE)
    out = pipe(text="a bell", duration=0.5, seed=0, steps=2)
    assert out.waveforms.shape == (1, 1, 8000) and out.sample_rate == 16000
    assert bool(out.waveforms.isfinite().all())


def _tone(frequency: float, seconds: float, rate: int = 16000) -> torch.Tensor:
    n = torch.arange(int(seconds * rate), dtype=torch.float64)
    return 0.5 * torch.cos(2 * math.pi * frequency * n / rate + 0.3)


@pytest.mark.parametrize("frequency", [440.0, 447.3, 1003.9])
def test_locked_phase_resynthesises_a_tone_between_bins_at_its_pitch_and_level(
    frequency: float,
) -> None:
    """True magnitudes of a steady tone (off the bin centres), locked phase, inverse STFT:
    the output's strongest frequency is the tone's (within 0.5 Hz by a zero-padded FFT) and
    its level is kept (within 3 %); bin-centre phases alone would beat and lose level."""
    n_fft, hop = 1024, 256
    wav = _tone(frequency, 1.024)[None]
    window = torch.hann_window(n_fft, dtype=torch.float64)
    log_magnitude = stft_same(wav, n_fft, hop, window).abs().clamp_min(1e-9).log()
    phase = peak_locked_phase(log_magnitude, n_fft, hop)
    out = istft_same(torch.polar(log_magnitude.exp(), phase), n_fft, hop, window)[0]
    inner = out[n_fft:-n_fft]
    spectrum = torch.fft.rfft(inner * torch.hann_window(len(inner), dtype=torch.float64), n=2**20)
    peak_hz = spectrum.abs().argmax().item() * 16000 / 2**20
    assert abs(peak_hz - frequency) < 0.5, peak_hz
    level = inner.pow(2).mean().sqrt() / wav[0, n_fft:-n_fft].pow(2).mean().sqrt()
    assert abs(level.item() - 1) < 0.03, level


def test_locked_phase_keeps_the_magnitudes_of_a_mixture() -> None:
    """Two tones and a chirp: the STFT of the resynthesis has the magnitudes it was made from
    (log-spectral distance on the strong bins < 0.35 nepers) and the level of the input."""
    n_fft, hop, rate = 1024, 256, 16000
    n = torch.arange(rate, dtype=torch.float64)
    chirp = 0.2 * torch.cos(2 * math.pi * (300 * n / rate + 200 * (n / rate) ** 2))
    wav = (_tone(523.25, 1.0) + 0.5 * _tone(1318.5, 1.0) + chirp)[None]
    window = torch.hann_window(n_fft, dtype=torch.float64)
    log_magnitude = stft_same(wav, n_fft, hop, window).abs().clamp_min(1e-9).log()
    out = istft_same(
        torch.polar(log_magnitude.exp(), peak_locked_phase(log_magnitude, n_fft, hop)),
        n_fft,
        hop,
        window,
    )
    again = stft_same(out, n_fft, hop, window).abs().clamp_min(1e-9).log()
    strong = log_magnitude > log_magnitude.max() - 4
    distance = (again - log_magnitude)[strong].abs().mean()
    assert distance < 0.35, distance
    assert abs(out.pow(2).mean().sqrt() / wav.pow(2).mean().sqrt() - 1) < 0.05


def test_locked_decoder_learns_only_magnitudes() -> None:
    """The locked head predicts C·bins values per frame and gradients reach it only through the
    magnitudes (the phase is computed without a graph)."""
    decoder = IstftDecoder(TINY_ISTFT)
    assert decoder.parameters_per_frame == TINY_ISTFT.n_fft // 2 + 1
    latents = torch.randn(1, TINY_ISTFT.latent_dim, 4, requires_grad=True)
    decoder(latents).pow(2).sum().backward()
    assert latents.grad is not None and latents.grad.abs().sum() > 0


@pytest.mark.parametrize("freeze", [False, True])
def test_export_measures_the_latent_scale_unless_the_encoder_is_frozen(
    tmp_path: Path, freeze: bool
) -> None:
    """A trained codec's export sets latent_scale = 1 / RMS of its posterior means, so encoded
    latents have unit RMS; with `freeze_encoder` only the decoder trains (the encoder's weights
    are bit-identical after the steps) and the export keeps the codec's scale, so a teacher
    trained on the old latents stays valid."""
    data = BandsDataset()
    start = dataclasses.replace(MODEL, codec=dataclasses.replace(TINY_ISTFT, latent_scale=0.5))
    settings = CodecTrainingConfig(
        stft_fft_sizes=(512, 128), adversarial_start=10**9, freeze_encoder=freeze
    )
    batch = collate([data[0], data[1]])
    task = CodecTask(start, settings, validation_batch=batch)
    encoder = {k: v.clone() for k, v in task.vae.encoder.state_dict().items()}
    decoder = {k: v.clone() for k, v in task.vae.decoder.state_dict().items()}
    train = _two_clip_run(5)
    Trainer(task, train, tmp_path / "run", data, collate, progress=False, cpu=True).fit()
    config, modules = load_native_components(tmp_path / "run" / "model")
    codec = modules["codec"]
    same = [torch.equal(v, encoder[k]) for k, v in codec.encoder.state_dict().items()]
    moved = [not torch.equal(v, decoder[k]) for k, v in codec.decoder.state_dict().items()]
    assert all(same) == freeze and any(moved)
    if freeze:
        assert config.codec.latent_scale == 0.5
    else:
        assert config.codec.latent_scale != 0.5
        with torch.no_grad():
            latents = codec.encode(batch["audio"], sample=False)
        assert abs(float(latents.pow(2).mean().sqrt()) - 1) < 1e-4


@pytest.mark.parametrize("freeze", [False, True])
def test_a_frozen_encoders_decoder_trains_on_posterior_means(freeze: bool) -> None:
    """With `freeze_encoder` the training reconstruction decodes the posterior mean (what the
    latent cache holds), the same for any noise draw; otherwise it decodes a posterior sample."""
    data = BandsDataset()
    settings = CodecTrainingConfig(stft_fft_sizes=(512, 128), freeze_encoder=freeze)
    task = CodecTask(MODEL, settings)
    wav = collate([data[0], data[1]])["audio"]
    with torch.no_grad():
        recons = [
            task.reconstruction(wav, torch.Generator().manual_seed(seed))[0] for seed in (0, 1)
        ]
        mean, _ = task.vae.encode_posterior(wav)
        from_mean = task.vae.decoder(mean)[..., : wav.shape[-1]]
    assert torch.equal(recons[0], recons[1]) == freeze
    assert torch.allclose(recons[0], from_mean) == freeze


@pytest.mark.parametrize("kind", ["istft", "oobleck"])
def test_latent_scale_multiplies_on_encode_and_divides_on_decode(kind: str) -> None:
    """With latent_scale s, encode gives s × the posterior mean and decode (whole or chunked)
    undoes it before the decoder, so encode → decode is the unscaled VAE's reconstruction."""
    base = TINY_ISTFT if kind == "istft" else preset("tiny").codec
    torch.manual_seed(0)
    plain = build_codec(base).eval()
    scaled = build_codec(dataclasses.replace(base, latent_scale=0.25)).eval()
    scaled.load_state_dict(plain.state_dict())
    wav = 0.3 * torch.randn(1, base.audio_channels, 24 * base.downsampling)
    with torch.no_grad():
        mean, _ = plain.encode_posterior(wav)
        latents = scaled.encode(wav, sample=False)
        torch.testing.assert_close(latents, 0.25 * mean)
        expected = plain.decoder(mean)
        torch.testing.assert_close(scaled.decode(latents), expected)
        chunked = scaled.decode_chunked(latents, chunk_frames=8, overlap_frames=8)
        torch.testing.assert_close(chunked, expected, rtol=1e-4, atol=1e-4)


def test_the_encoder_reads_magnitudes_above_its_floor_only() -> None:
    """Two signals whose STFT magnitudes all lie below 1e-3 but differ: identical latents with
    `encoder_floor` 1e-3, different ones with 1e-5."""
    quiet = torch.randn(2, 1, 1024, generator=torch.Generator().manual_seed(0)) * 1e-6
    quiet[1] *= 10
    for floor, same in ((1e-3, True), (1e-5, False)):
        torch.manual_seed(0)
        codec = build_codec(dataclasses.replace(TINY_ISTFT, encoder_floor=floor)).eval()
        with torch.no_grad():
            mean, _ = codec.encode_posterior(quiet)
        assert torch.equal(mean[0], mean[1]) == same


def test_encoder_floor_round_trips_and_old_configs_keep_1e_5() -> None:
    model = dataclasses.replace(MODEL, codec=dataclasses.replace(TINY_ISTFT, encoder_floor=1e-3))
    assert from_dict(ModelConfig, to_dict(model)).codec.encoder_floor == 1e-3
    old = to_dict(MODEL)
    del old["codec"]["encoder_floor"]
    assert from_dict(ModelConfig, old).codec.encoder_floor == 1e-5
    with pytest.raises(ValueError, match="encoder_floor: must be finite and > 0"):
        CodecConfig(encoder_floor=0.0)
