"""Embedders: front-end shapes and rates, published checkpoint layouts, loading and registry."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from audiox_turbo.errors import AudioXError, ModelLoadError
from audiox_turbo.eval import embedders, features
from audiox_turbo.eval.panns import Cnn14, Cnn14Config, PannsEmbedder, load_panns
from audiox_turbo.eval.passt import Passt, PasstConfig, PasstEmbedder, load_passt
from audiox_turbo.eval.vggish import VGGishConfig, VGGishEmbedder, VGGishNetwork, load_vggish
from conftest import randomize_

TINY_VGGISH = VGGishConfig(widths=(2, 4, 4, 8), hidden_dim=16, embedding_dim=8)
TINY_CNN14 = Cnn14Config(widths=(2, 4, 4, 4, 4, 8), num_classes=5)
TINY_PASST = PasstConfig(embed_dim=16, depth=2, num_heads=2, num_classes=5)


def _noise(batch: int, channels: int, seconds: float, sr: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(batch, channels, int(seconds * sr), generator=g)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone().contiguous() for k, v in module.state_dict().items()}


# --- waveform preparation and front ends --------------------------------------------------


def test_mono_at_rate_downmixes_and_resamples():
    wave = torch.stack([torch.ones(2, 44100), -torch.ones(2, 44100) * 0.5], dim=1)  # (2, 2, S)
    clips = features.mono_at_rate(wave, 44100, 16000)
    assert [c.shape for c in clips] == [(16000,), (16000,)]
    np.testing.assert_allclose(clips[0][2000:14000], 0.25, atol=1e-3)
    unequal = features.mono_at_rate([np.zeros(32000), np.zeros((2, 16000))], 32000, 16000)
    assert [c.shape for c in unequal] == [(16000,), (8000,)]


@pytest.mark.parametrize(("seconds", "patches"), [(10.0, 10), (3.0, 3), (0.5, 1)])
def test_vggish_patches_per_second(seconds, patches):
    front = features.VGGishFrontEnd()
    out = front(torch.zeros(2, int(seconds * 16000)))
    assert out.shape == (2, patches, 96, 64)


def test_vggish_log_mel_puts_a_sine_in_its_mel_band():
    front = features.VGGishFrontEnd()
    t = torch.arange(16000, dtype=torch.float32) / 16000
    mel = front.log_mel(torch.sin(2 * torch.pi * 1000.0 * t)[None])
    assert mel.shape == (1, 1 + (16000 - 400) // 160, 64)
    edges = np.linspace(1127 * np.log1p(125 / 700), 1127 * np.log1p(7500 / 700), 66)
    centres_hz = 700 * (np.exp(edges[1:-1] / 1127) - 1)
    assert int(mel[0].mean(0).argmax()) == int(np.abs(centres_hz - 1000.0).argmin())
    assert np.all(front.mel.numpy()[0] == 0.0)


def test_cnn14_stft_convolutions_equal_torch_stft():
    spec = Cnn14(TINY_CNN14).spectrogram_extractor.double()
    wave = torch.randn(1, 8000, dtype=torch.float64)
    power = spec(wave)
    window = torch.hann_window(1024, periodic=True, dtype=torch.float64)
    ref = torch.stft(wave, 1024, 320, window=window, center=True, return_complex=True).abs() ** 2
    # The DFT kernels are stored in float32 (as published): errors ~1e-7 of the spectrum's scale.
    torch.testing.assert_close(power[0, 0], ref[0].T, rtol=1e-5, atol=1e-6 * float(ref.max()))


def test_cnn14_log_mel_frames_for_ten_seconds():
    mel = Cnn14(TINY_CNN14).log_mel(torch.zeros(1, 320000) + 1e-3)
    assert mel.shape == (1, 1, 1001, 64)


def test_passt_front_end_and_patch_grid_for_ten_seconds():
    config = PasstConfig()
    mel = features.PasstFrontEnd()(torch.randn(1, 320000))
    assert mel.shape == (1, 128, 1000)
    assert config.grid == (12, 99)
    freq = (128 - config.patch) // config.stride + 1
    time = (1000 - config.patch) // config.stride + 1
    assert (freq, time) == config.grid


# --- published layouts --------------------------------------------------------------------


def test_published_layouts_have_the_released_key_shapes():
    with torch.device("meta"):
        vggish, cnn14, passt = VGGishNetwork(), Cnn14(), Passt()
    v, c, p = vggish.state_dict(), cnn14.state_dict(), passt.state_dict()
    assert v["features.13.weight"].shape == (512, 512, 3, 3)
    assert v["embeddings.0.weight"].shape == (4096, 12288)
    assert v["embeddings.4.weight"].shape == (128, 4096)
    assert sum(t.numel() for t in v.values()) == 72_141_184
    assert c["spectrogram_extractor.stft.conv_real.weight"].shape == (513, 1, 1024)
    assert c["logmel_extractor.melW"].shape == (513, 64)
    assert c["conv_block6.conv2.weight"].shape == (2048, 2048, 3, 3)
    assert c["fc_audioset.weight"].shape == (527, 2048)
    assert "bn0.running_var" in c
    assert p["patch_embed.proj.weight"].shape == (768, 1, 16, 16)
    assert p["time_new_pos_embed"].shape == (1, 768, 1, 99)
    assert p["freq_new_pos_embed"].shape == (1, 768, 12, 1)
    assert p["blocks.11.attn.qkv.weight"].shape == (2304, 768)
    assert p["head.1.weight"].shape == (527, 768)
    assert p["head_dist.weight"].shape == (527, 768)


# --- loading round trips ------------------------------------------------------------------


def test_vggish_checkpoint_round_trip(tmp_path):
    network = randomize_(VGGishNetwork(TINY_VGGISH), seed=1)
    wave = _noise(2, 2, 2.0, 22050)
    expected = VGGishEmbedder(network).embed(wave, 22050)
    assert expected.shape == (2, 2, 8)
    torch.save(_state(network), tmp_path / "vggish.pth")
    save_file(_state(network), str(tmp_path / "vggish.safetensors"))
    for name in ("vggish.pth", "vggish.safetensors"):
        loaded = load_vggish(tmp_path / name, config=TINY_VGGISH)
        torch.testing.assert_close(loaded.embed(wave, 22050), expected, rtol=0, atol=0)


def test_vggish_pca_postprocessing_from_either_file(tmp_path):
    config = VGGishConfig(widths=(2, 4, 4, 8), hidden_dim=16, embedding_dim=128)
    network = randomize_(VGGishNetwork(config), seed=2, std=0.3)
    g = torch.Generator().manual_seed(3)
    matrix, means = torch.randn(128, 128, generator=g), torch.randn(128, generator=g) * 0.1
    wave = _noise(1, 1, 1.0, 16000)
    raw = VGGishEmbedder(network).embed(wave, 16000)[0]
    expected = torch.round(((raw - means) @ matrix.T).clamp(-2, 2).add(2) * 255 / 4)
    state = _state(network) | {"pproc.pca_matrix": matrix, "pproc.pca_means": means[:, None]}
    torch.save(state, tmp_path / "full.pth")
    torch.save(_state(network), tmp_path / "plain.pth")
    # torchvggish's PCA file may hold numpy arrays: they load under weights_only too.
    pca_arrays = {"pca_eigen_vectors": matrix.numpy(), "pca_means": means.numpy()}
    torch.save(pca_arrays, tmp_path / "pca.pth")
    inline = load_vggish(tmp_path / "full.pth", config=config, postprocess=True)
    separate = load_vggish(
        tmp_path / "plain.pth", config=config, pca_checkpoint=tmp_path / "pca.pth", postprocess=True
    )
    torch.testing.assert_close(inline.embed(wave, 16000)[0], expected)
    torch.testing.assert_close(separate.embed(wave, 16000)[0], expected)
    unprocessed = load_vggish(tmp_path / "full.pth", config=config)
    torch.testing.assert_close(unprocessed.embed(wave, 16000)[0], raw, rtol=0, atol=0)
    with pytest.raises(ModelLoadError, match="PCA"):
        load_vggish(tmp_path / "plain.pth", config=config, postprocess=True)


def test_panns_checkpoint_round_trip_in_nested_model_format(tmp_path):
    network = randomize_(Cnn14(TINY_CNN14), seed=4)
    wave = _noise(3, 1, 1.5, 32000, seed=5)
    embedder = PannsEmbedder(network)
    expected_emb, expected_logits = embedder.embed_and_classify(wave, 32000)
    assert expected_emb.shape == (3, 8)
    assert expected_logits.shape == (3, 5)
    torch.save({"model": _state(network), "iteration": 0}, tmp_path / "Cnn14_mAP=0.431.pth")
    loaded = load_panns(tmp_path / "Cnn14_mAP=0.431.pth", config=TINY_CNN14)
    emb, logits = loaded.embed_and_classify(wave, 32000)
    torch.testing.assert_close(emb, expected_emb, rtol=0, atol=0)
    torch.testing.assert_close(logits, expected_logits, rtol=0, atol=0)
    torch.testing.assert_close(loaded.classify(wave, 32000), logits, rtol=0, atol=0)
    assert isinstance(loaded, embedders.AudioTagger)


def test_passt_checkpoint_round_trip_bare_and_wrapped(tmp_path):
    network = randomize_(Passt(TINY_PASST), seed=6, std=0.05)
    wave = _noise(2, 2, 1.0, 48000, seed=7)
    expected_emb, expected_logits = PasstEmbedder(network).embed_and_classify(wave, 48000)
    assert expected_emb.shape == (2, 16)
    assert expected_logits.shape == (2, 5)
    torch.save(_state(network), tmp_path / "passt.pt")
    torch.save({"net." + k: v for k, v in _state(network).items()}, tmp_path / "wrapped.pt")
    for name in ("passt.pt", "wrapped.pt"):
        emb, logits = load_passt(tmp_path / name, config=TINY_PASST).embed_and_classify(wave, 48000)
        torch.testing.assert_close(emb, expected_emb, rtol=0, atol=0)
        torch.testing.assert_close(logits, expected_logits, rtol=0, atol=0)


def test_passt_averages_ten_second_windows_of_long_clips():
    network = randomize_(Passt(TINY_PASST), seed=8, std=0.05)
    embedder = PasstEmbedder(network)
    wave = _noise(1, 1, 25.0, 32000, seed=9)[:, 0]
    windows = embedder._windows(wave)
    assert windows.shape == (1, 3, 320000)
    torch.testing.assert_close(windows[0, 2], wave[0, -320000:])
    mel = embedder.front_end(windows[0])
    per_window, _ = network(mel[:, None])
    torch.testing.assert_close(embedder.embed(wave[:, None], 32000)[0], per_window.mean(0))


def test_clips_of_unequal_length():
    panns = PannsEmbedder(randomize_(Cnn14(TINY_CNN14), seed=10))
    clips = [torch.randn(1, 16000), torch.randn(2, 24000)]
    assert panns.embed(clips, 16000).shape == (2, 8)
    vggish = VGGishEmbedder(randomize_(VGGishNetwork(TINY_VGGISH), seed=11))
    long_clips = [torch.randn(1, 16000), torch.randn(1, 48000)]
    with pytest.raises(AudioXError, match="embed_clips"):
        vggish.embed(long_clips, 16000)
    frames = embedders.embed_clips(vggish, long_clips, 16000)
    assert [f.shape for f in frames] == [(1, 8), (3, 8)]


# --- errors and the registry --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "published"),
    [("vggish", "vggish-10086976.pth"), ("panns", "Cnn14_mAP=0.431.pth"), ("passt", "passt-s")],
)
def test_missing_checkpoint_names_the_file(tmp_path, name, published):
    missing = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(ModelLoadError) as info:
        embedders.get_embedder(name, checkpoint=missing)
    message = str(info.value)
    assert str(missing) in message
    assert published in message
    assert "\n" not in message
    with pytest.raises(ModelLoadError, match="no checkpoint path given"):
        embedders.get_embedder(name)


def test_mismatched_and_unreadable_checkpoints_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(ModelLoadError, match="weights do not match") as info:
        load_vggish(bad, config=TINY_VGGISH)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="cannot read checkpoint") as info:
        load_panns(junk, config=TINY_CNN14)
    assert "\n" not in str(info.value)


def test_registry_names_judge_and_custom_factories(monkeypatch):
    assert {"vggish", "panns", "passt", "clap", "judge"} <= set(embedders.available_embedders())
    with pytest.raises(AudioXError, match="unknown embedder"):
        embedders.get_embedder("openl3")
    judge = embedders.get_embedder("judge")  # the shipped weights
    assert judge.sample_rate == 16000 and judge.kind == "clip"
    monkeypatch.setattr(embedders, "_FACTORIES", dict(embedders._FACTORIES))
    network = randomize_(VGGishNetwork(TINY_VGGISH), seed=12)
    embedders.register_embedder("Mine", lambda checkpoint, device: VGGishEmbedder(network, device))
    mine = embedders.get_embedder("mine")
    assert isinstance(mine, embedders.Embedder)
    assert mine.kind == "frames"


def test_clap_without_package_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "laion_clap", None)
    with pytest.raises(AudioXError, match="laion_clap is not installed"):
        embedders.get_embedder("clap", checkpoint=tmp_path / "clap.pt")


def test_clap_wrapper_resamples_to_48k_and_embeds_text(monkeypatch, tmp_path):
    calls: dict[str, object] = {}

    class FakeClap:
        def __init__(self, enable_fusion, amodel, device):
            calls["init"] = (enable_fusion, amodel, device)

        def load_ckpt(self, path):
            calls["ckpt"] = path

        def get_audio_embedding_from_data(self, x, use_tensor):
            calls.setdefault("lengths", []).append(x.shape[-1])
            return torch.ones(x.shape[0], 512)

        def get_text_embedding(self, texts, use_tensor):
            return torch.zeros(len(texts), 512)

    monkeypatch.setitem(sys.modules, "laion_clap", types.SimpleNamespace(CLAP_Module=FakeClap))
    with pytest.raises(ModelLoadError, match="630k-audioset"):
        embedders.get_embedder("clap", checkpoint=tmp_path / "absent.pt")
    checkpoint = tmp_path / "clap.pt"
    checkpoint.write_bytes(b"x")
    clap = embedders.get_embedder("clap", checkpoint=checkpoint)
    assert clap.embed(torch.zeros(2, 2, 16000), 16000).shape == (2, 512)
    assert calls["lengths"] == [48000, 48000]
    assert calls["ckpt"] == str(checkpoint)
    assert clap.embed_text(["a dog barks"]).shape == (1, 512)
