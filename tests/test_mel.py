"""The one mel filterbank: each style's triangles, normalisation and band limits."""

from __future__ import annotations

import numpy as np
import pytest

from audiox_turbo.mel import mel_filterbank


def test_slaney_mel_filters_are_area_normalised_triangles():
    mel = mel_filterbank(32000, 1024, 64, 50.0, 14000.0, "slaney")
    assert mel.shape == (513, 64)
    bins = np.linspace(0, 16000, 513)
    # Each triangle integrates to 1 over frequency (height 2/(f₊ − f₋), base f₊ − f₋); the
    # 31.25 Hz bin grid resolves the wider upper filters to within 2 %.
    areas = mel.sum(axis=0) * (bins[1] - bins[0])
    np.testing.assert_allclose(areas[24:], 1.0, rtol=0.02)
    assert bins[mel[:, 0] > 0].min() > 50.0
    assert bins[mel[:, -1] > 0].max() < 14000.0


def test_kaldi_mel_banks_peak_at_their_centres_and_leave_nyquist_empty():
    mel = mel_filterbank(32000, 1024, 128, 0.0, 15000.0, "kaldi")
    assert mel.shape == (513, 128)
    assert np.all(mel[-1] == 0.0)
    assert np.all(mel.max(axis=0) <= 1.0)
    assert mel[:, 100].max() > 0.9
    bins = np.arange(513) * 32000 / 1024
    assert bins[mel[:, -1] > 0].max() < 15000.0
    assert np.all(mel_filterbank(16000, 512, 64, 125.0, 7500.0, "kaldi")[0] == 0.0)


def test_htk_filters_are_unit_peak_triangles_linear_in_hz_up_to_nyquist():
    sr, n_fft, n_mels = 16000, 1024, 80
    mel = mel_filterbank(sr, n_fft, n_mels)
    assert mel.shape == (n_fft // 2 + 1, n_mels)
    bins = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges_mel = np.linspace(0.0, 2595 * np.log10(1 + (sr / 2) / 700), n_mels + 2)
    edges = 700 * (10 ** (edges_mel / 2595) - 1)
    k = 40  # one filter, by its definition: rises from edges[k] to 1 at edges[k+1], then falls
    expected = np.clip(
        np.minimum(
            (bins - edges[k]) / (edges[k + 1] - edges[k]),
            (edges[k + 2] - bins) / (edges[k + 2] - edges[k + 1]),
        ),
        0.0,
        None,
    )
    np.testing.assert_allclose(mel[:, k], expected, atol=1e-12)
    assert mel.max() <= 1.0 and mel[:, -1].max() > 0.0


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="unknown mel style"):
        mel_filterbank(16000, 512, 64, style="bark")  # type: ignore[arg-type]
