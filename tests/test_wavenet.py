"""WaveNet: the receptive field, Fast WaveNet's queues against the network, the mixture output, mu-law, speakers,
input errors, audio files, training windows, VCTK and the CLI.

Generic causality, normalisation of 2-sample clips, fast == naive, complete, save/load and the shared bad inputs of
the mu-law ``tiny`` preset (and its speaker-conditional variant) are checked by tests/test_contract.py."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

import zoo
from zoo.audio import AudioSpace
from zoo.cli import main
from zoo.datasets import load_dataset
from zoo.train import evaluate
from zoo.windows import AudioClip, AudioClipSet, AudioWindows

MIXTURE = dict(output="logistic-mixture", levels=64, mixtures=3)


def tiny(**overrides):
    model = zoo.build("wavenet", "tiny", **overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return model.eval()


def waveform(n: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, t, generator=torch.Generator().manual_seed(seed)) * 1.8 - 0.9


@pytest.mark.parametrize("overrides", [{}, MIXTURE], ids=["mu-law", "mixture"])
def test_no_output_depends_on_the_current_or_a_future_sample(overrides):
    model = zoo.build("wavenet", "tiny", **overrides).double()  # default init, float64: no unit saturates to a zero gradient
    rf, width = model.receptive_field, 40
    inputs = torch.cat([torch.tensor([[model.bos]]), model.space.encode(waveform(1, width - 1))], dim=1)
    rows = model._input_rows(inputs).detach().requires_grad_(True)
    model._input_rows = lambda _: rows  # the gradient reaches each input position's representation
    params = model(inputs, None)
    for t in range(width):
        (grad,) = torch.autograd.grad(params[0, :, t].sum(), rows, retain_graph=True)
        reach = grad.abs().flatten(2).sum(-1)[0] > 0  # input positions output t depends on
        assert not reach[t + 1 :].any(), f"output {t} depends on a later input"
        assert reach[max(0, t - rf + 1) : t + 1].all() and not reach[: max(0, t - rf + 1)].any()


def test_changing_a_sample_leaves_log_probs_past_the_receptive_field_unchanged():
    model = tiny()
    x = waveform(1, 30)
    base = model.log_prob(x, per_dim=True)[0]
    for s in (0, 7, 29):
        changed = x.clone()
        changed[0, s] = -x[0, s]
        other = model.log_prob(changed, per_dim=True)[0]
        assert base[s] != other[s]
        reach = s + model.receptive_field  # sample s is the input at s + 1; outputs up to s + rf see it
        assert torch.equal(base[reach + 1 :], other[reach + 1 :])


@pytest.mark.parametrize("overrides", [{}, MIXTURE], ids=["mu-law", "mixture"])
def test_fast_generation_equals_naive_at_a_temperature_and_for_the_mixture(overrides):
    """The suite samples the mu-law preset at temperature 1; here the temperature, batch 1 and the mixture output."""
    model = tiny(labels=["a", "b"], **overrides)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    if overrides:
        fast = model.sample(2, samples=300, condition=["a", "b"], generator=g())
        naive = model.sample(2, samples=300, condition=["a", "b"], generator=g(), naive=True)
        assert torch.equal(fast, naive) and fast.shape == (2, 300)
    prefix = waveform(2, 25)
    fast = model.complete(prefix, samples=40, condition="b", generator=g(), temperature=0.8)
    assert torch.equal(fast, model.complete(prefix, samples=40, condition="b", generator=g(), temperature=0.8, naive=True))
    single = model.sample(1, samples=50, condition="a", generator=g())
    assert torch.equal(single, model.sample(1, samples=50, condition="a", generator=g(), naive=True))


def test_the_plain_python_loop_gives_the_same_samples_as_torchscript(monkeypatch):
    import zoo.models.wavenet as wavenet

    model = tiny(**MIXTURE)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    scripted = model.sample(2, samples=80, generator=g())
    monkeypatch.setattr(wavenet, "_COMPILED", {"loop": wavenet._loop})
    assert torch.equal(model.sample(2, samples=80, generator=g()), scripted)


def test_fast_step_matches_the_network_at_every_position():
    """The queues' parameters at every step equal the full forward's (and the naive cache's, cropped to the field)."""
    from zoo.audio import AudioCache
    from zoo.models.wavenet import Queues

    model = tiny(dilations=[1, 2, 4, 8, 1, 3], kernel_size=3)
    x = waveform(2, 60)
    codes = model.space.encode(x)
    with torch.no_grad():
        full = model(torch.cat([torch.full((2, 1), model.bos), codes[:, :-1]], dim=1), None)  # [N, P, W]
        queues, naive = model.incremental_cache(codes.clone(), 0, None), AudioCache(model, codes.clone(), None)
        assert isinstance(queues, Queues)
        for t in range(60):
            torch.testing.assert_close(queues.params_at(t), full[:, :, t], rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(naive.params_at(t), full[:, :, t], rtol=1e-4, atol=1e-4)


def test_mu_law_round_trip_uses_torchaudio():
    import torchaudio.functional as AF

    space = AudioSpace(8000)
    codes = torch.arange(256)
    assert torch.equal(space.encode(space.decode(codes)), codes)
    x = torch.linspace(-1, 1, 1001)
    assert torch.equal(space.encode(x), AF.mu_law_encoding(x, 256))
    step = (space.decode(codes)[1:] - space.decode(codes)[:-1]).max()
    assert float((space.decode(space.encode(x)) - x).abs().max()) <= float(step) / 2 + 1e-6
    linear = AudioSpace(8000, 65536, "linear")
    assert torch.equal(linear.encode(linear.decode(torch.tensor([0, 1, 32767, 65535]))), torch.tensor([0, 1, 32767, 65535]))


def test_marginal_entropy():
    space = AudioSpace(8000, 16)
    assert space.marginal_entropy(torch.arange(16).repeat(10)) == pytest.approx(4.0)
    assert space.marginal_entropy([torch.full((5,), 3), torch.full((7,), 3)]) == 0.0


def test_speaker_conditioning_changes_the_distribution():
    model = tiny(labels=["a", "b"])
    x = waveform(2, 50)
    by_name = model.log_prob(x, condition="a")
    assert torch.equal(by_name, model.log_prob(x, condition=torch.tensor([0, 0])))
    assert not torch.allclose(by_name, model.log_prob(x, condition="b"))
    mixed = model.log_prob(x, condition=["a", "b"])
    assert mixed[0] == by_name[0] and mixed[1] != by_name[1]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert not torch.equal(model.sample(1, samples=100, condition="a", generator=g()),
                           model.sample(1, samples=100, condition="b", generator=g()))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.log_prob(waveform(1, 20), condition="a", sample_rate=16000), r"at 16000 Hz; this model takes 8000 Hz .*resample=True"),
        (lambda m: m.log_prob(waveform(2, 20).reshape(1, 2, 20), condition="a"), r"2 channels .* mono audio"),
        (lambda m: m.log_prob(torch.tensor([0.1, float("nan"), 0.2]), condition="a"),
         r"1 NaN or infinite value\(s\); this model takes a float waveform"),
        (lambda m: m.log_prob(torch.tensor([0.1, 1.5, -2.0]), condition="a"), r"values in \[-2, 1.5\]; this model takes .*\[-1, 1\]"),
        (lambda m: m.log_prob(torch.zeros(10, dtype=torch.int16), condition="a"), r"dtype torch.int16.*x.float\(\) / 32768"),
        (lambda m: m.log_prob(waveform(1, 20), condition="zed"), r"unknown condition 'zed'; pass a name in \['a', 'b'\] or an id in 0..1"),
        (lambda m: m.log_prob(torch.zeros(1, 0), condition="a"), r"empty"),
        (lambda m: m.sample(1, seconds=-1, condition="a"), r"seconds must be a finite number >= 0, got -1"),
        (lambda m: m.sample(1, seconds=1e-5, condition="a"), r"less than one sample at 8000 Hz"),
        (lambda m: m.complete(waveform(1, 5), samples=-3, condition="a"), r"samples must be an int >= 0"),
    ],
)
def test_bad_input_names_what_is_wrong_and_what_is_accepted(call, message):
    with pytest.raises(zoo.InvalidInputError, match=message):
        call(tiny(labels=["a", "b"]))


def test_resampling_on_request():
    model = tiny()
    x = waveform(1, 160)
    lp = model.log_prob(x, sample_rate=16000, resample=True, per_dim=True)
    assert lp.shape == (1, 80)
    assert model.complete(x, sample_rate=16000, resample=True, samples=5).shape == (1, 85)


def test_probabilities_of_all_mixture_clips_of_a_length_sum_to_one():
    """The mixture output over linear codes (the suite enumerates the mu-law preset's 2-sample clips)."""
    overrides = dict(output="logistic-mixture", levels=8, mixtures=2)
    model = tiny(**overrides)
    codes = torch.tensor(list(itertools.product(range(8), repeat=4)))
    clips = model.space.decode(codes)
    assert torch.equal(model.space.encode(clips), codes)
    total = model.log_prob(clips).double().exp().sum()
    assert abs(float(total) - 1) < 2e-3
    bits = model.bits_per_dim(clips[:3])
    assert torch.allclose(bits, -model.log_prob(clips[:3]) / (4 * math.log(2)))
    assert torch.allclose(model.bits_per_sample(clips[:3]), bits)


def test_clips_of_different_lengths_score_like_single_clips():
    model = tiny()
    clips = [waveform(1, 30, seed=1)[0], waveform(1, 12, seed=2)[0]]
    batch = model.log_prob(clips)
    assert torch.allclose(batch, torch.cat([model.log_prob(c) for c in clips]), atol=1e-5)
    per = model.log_prob(clips, per_dim=True)
    assert per.shape == (2, 30) and torch.isnan(per[1, 12:]).all() and not torch.isnan(per[1, :12]).any()


def test_complete_lengths_in_seconds_and_no_new_samples():
    model = tiny()
    prefix = waveform(3, 33)
    out = model.complete(prefix, seconds=0.005, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 33 + 40)
    assert torch.equal(model.complete(prefix[0], samples=0), prefix[:1])
    assert float(out.abs().max()) <= 1


def test_training_windows_are_exact_and_evaluation_scores_whole_clips():
    model = tiny(labels=["a", "b"], train_samples=16)
    clips = [AudioClip(waveform(1, 50, seed=i)[0], 8000, "ab"[i % 2], None) for i in range(3)]
    clips.append(AudioClip(waveform(1, 60, seed=9)[0], 16000, "a", None))  # resampled to 30 samples
    windows = model.prepare_dataset(clips, train=True)
    assert isinstance(windows, AudioWindows) and len(windows) == 4 + 4 + 4 + 2
    rows, speakers = windows.batch(torch.arange(len(windows)))
    assert rows.shape == (14, 2, model.receptive_field - 1 + 16) and ((rows[:, 1] >= 0).sum(1) == 16).all()
    nats, dims = model.training_loss((rows, speakers))
    assert dims == 14 * 16 and nats.requires_grad
    # every scored target in a window has the log-probability it has in its whole clip
    full = [model.log_prob(c.waveform[None], condition=c.speaker, per_dim=True, sample_rate=c.sample_rate, resample=True)[0]
            for c in clips]
    scored = model.per_step_log_prob(rows[:, 0], rows[:, 1], speakers).detach()
    for row, clip in enumerate(windows.clip_of.tolist()):
        targets = rows[row, 1]
        clip_codes = windows.codes.segment(clip, 0, windows.codes.lengths[clip])
        a = next(s for s in range(len(clip_codes) - 15) if torch.equal(clip_codes[s : s + 16], targets[targets >= 0]))
        torch.testing.assert_close(scored[row][targets >= 0], full[clip][a : a + 16], rtol=1e-4, atol=1e-4)
    test = model.prepare_dataset(clips, train=False)
    assert isinstance(test, AudioClipSet)
    result = evaluate(model, test, batch_size=3)
    lp = torch.stack([f.sum() for f in full])
    assert result["nll_nats"] == pytest.approx(-float(lp.mean()), rel=1e-5)
    assert result["bits_per_dim"] == pytest.approx(-float(lp.sum()) / (3 * 50 + 30) / math.log(2), rel=1e-5)
    with pytest.raises(zoo.DatasetError, match=r"speaker\(s\) \['zed'\]"):
        model.prepare_dataset([AudioClip(waveform(1, 20)[0], 8000, "zed", None)], train=True)


def test_receptive_field_and_presets():
    assert zoo.build("wavenet", "vctk").receptive_field == 5117  # ibab: (2-1) * 5 * 1023 + 1 + (2-1)
    assert len(zoo.build("wavenet", "vctk").labels) == 109
    assert tiny().receptive_field == 1 * (1 + 2 + 4 + 1 + 2 + 1) + 1
    with pytest.raises(zoo.ConfigError, match="output must be one of"):
        zoo.build("wavenet", "tiny", output="wav")


def test_wavenet_vctk_is_unpublished():
    info = zoo.model_info("wavenet-vctk")
    assert info["status"] == "unpublished" and info["receptive_field"] == 5117 and info["modality"] == "audio"
    assert "wavenet-vctk" not in zoo.list_models(pretrained=True)
    with pytest.raises(zoo.WeightsUnavailableError, match=r"no weights are published.*zoo train wavenet-vctk.*pretrained=False"):
        zoo.load("wavenet-vctk")
    assert zoo.load("wavenet-vctk", pretrained=False).receptive_field == 5117


def make_vctk(root, utterances=(1, 2, 10, 20), rate=48000):
    """A tiny folder in VCTK 0.92's layout (train 1, 2; valid 10; test 20): two speakers, plus p315 without transcripts
    (skipped, as by torchaudio)."""
    base = root / "VCTK-Corpus-0.92"
    for i, speaker in enumerate(["p225", "p226", "p315"]):
        (base / "wav48_silence_trimmed" / speaker).mkdir(parents=True)
        (base / "txt" / speaker).mkdir(parents=True)
        for u in utterances:
            name = f"{speaker}_{u:03d}"
            tone = 0.5 * np.sin(np.arange(rate // 40 + 37 * u) * 2 * np.pi * (220 + 50 * i) / rate)
            soundfile.write(base / "wav48_silence_trimmed" / speaker / f"{name}_mic1.flac", tone, rate)
            soundfile.write(base / "wav48_silence_trimmed" / speaker / f"{name}_mic2.flac", tone, rate)
            if speaker != "p315":
                (base / "txt" / speaker / f"{name}.txt").write_text("Please call Stella.\n")
    return root


def test_vctk_adapter_reads_the_torchaudio_layout_with_soundfile(tmp_path):
    root = make_vctk(tmp_path)
    train, test = load_dataset("vctk", "train", root), load_dataset("vctk", "test", root)
    assert sorted((f.speaker, f.path.name) for f in test) == [("p225", "p225_020_mic1.flac"), ("p226", "p226_020_mic1.flac")]
    assert len(train) == 4 and {f.speaker for f in train} == {"p225", "p226"} and train[0].sample_rate == 48000
    model = tiny(sample_rate=16000, labels=["p225", "p226"], train_samples=64)
    clips = model.prepare_dataset(test, train=False)
    (rows, speakers) = clips.batch(torch.arange(2))
    whole = model.space.encode(model.space.resample(test[0].read(), 48000))
    assert clips.codes.lengths[0] == len(whole) == math.ceil(test[0].frames / 3)
    assert torch.equal(rows[0, 1, : len(whole)], whole) and speakers.tolist() == [0, 1]
    middle = clips.codes.segment(0, 200, 300)  # a window read on its own: same codes, but for resampling-filter edges
    assert (middle == whole[200:300]).float().mean() > 0.95
    windows = model.prepare_dataset(train, train=True)
    rows, speakers = windows.batch(torch.arange(len(windows)))
    assert rows.shape[1:] == (2, model.receptive_field - 1 + 64)


def test_zoo_train_wavenet_vctk_runs_on_the_dataset_layout(tmp_path, capsys):
    root = make_vctk(tmp_path / "data")
    out = tmp_path / "run"
    settings = ["steps=2", "batch_size=2", "eval_every=2", "eval_examples=2", "warmup_steps=1", "config.dilations=[1,2]",
                "config.residual_channels=4", "config.dilation_channels=4", "config.skip_channels=4", "config.train_samples=32"]
    argv = ["train", "wavenet-vctk", "--data", str(root), "--output", str(out)]
    assert main([*argv, *(x for s in settings for x in ("--set", s))]) == 0
    trained = zoo.load(f"local-dir:{out / 'best'}")
    assert trained.sample_rate == 16000 and len(trained.labels) == 109 and "valid" in capsys.readouterr().out


@pytest.fixture
def audio_model_arg(tmp_path):
    folder = tmp_path / "wn"
    tiny(labels=["theo", "george"]).save_pretrained(folder)
    return f"local-dir:{folder}"


def test_cli_sample_complete_and_score_audio(tmp_path, audio_model_arg, capsys):
    out, png = tmp_path / "out.wav", tmp_path / "spec.png"
    argv = ["sample", audio_model_arg, "--speaker", "theo", "--seconds", "0.02", "-o", str(out), "--seed", "1"]
    assert main([*argv, "--spectrogram", str(png)]) == 0
    data, rate = soundfile.read(out)
    assert rate == 8000 and data.shape == (160,) and Image.open(png).size[0] >= 256
    again = tmp_path / "again.wav"
    assert main([*argv[:-3], str(again), "--seed", "1"]) == 0 and again.read_bytes() == out.read_bytes()
    assert main(["sample", audio_model_arg, "--speaker", "1", "--seconds", "0.01", "-n", "2", "-o", str(tmp_path / "many.flac")]) == 0
    assert soundfile.read(tmp_path / "many_1.flac")[0].shape == (80,)
    prefix = tmp_path / "prefix.wav"
    soundfile.write(prefix, 0.3 * np.sin(np.arange(320) / 5), 16000)  # 20 ms at 16 kHz: resampled to 160 samples
    done = tmp_path / "done.wav"
    assert main(["complete", audio_model_arg, "--input", str(prefix), "--speaker", "george", "--seconds", "0.01", "-o", str(done)]) == 0
    assert soundfile.read(done)[0].shape == (240,)
    capsys.readouterr()
    assert main(["score", audio_model_arg, "--input", str(out), str(done), "--speaker", "theo"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "bits/sample" in lines[0] and lines[1].endswith("240 samples")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sample", "--speaker", "nobody", "-o", "x.wav"], "unknown condition 'nobody'"),
        (["sample", "--speaker", "theo"], "pass -o FILE.wav"),
        (["sample", "--speaker", "theo", "-o", "x.mp3"], r"x\.mp3: audio models write \.wav/\.flac files"),
        (["score", "--speaker", "theo", "--input", "missing.wav"], "cannot read audio"),
    ],
)
def test_cli_audio_errors_are_one_line(tmp_path, audio_model_arg, argv, message, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = ["--seconds", "0.01"] if argv[0] == "sample" else []
    assert main([argv[0], audio_model_arg, *argv[1:], *extra]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err
