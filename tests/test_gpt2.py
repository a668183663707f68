"""GPT-2 in transformers' format, checked against transformers itself, without the network.

transformers' ``GPT2LMHeadModel`` with random weights and a byte-level BPE tokenizer trained here
with ``tokenizers`` are saved with transformers' own ``save_pretrained`` (safetensors); zoo reads
that folder and must score and generate exactly as transformers does.
"""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo.bpe import BPESpace
from zoo.models import gpt2 as zgpt2

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CORPUS = ("To get an A+ in deep generative models, students have to read the papers, derive the likelihoods and "
          "write the samplers themselves.\n") * 4 + "Ünïcödé: naïve café, 日本語のテキスト, emoji 🙂🚀, Ελληνικά, عربى.\n" * 4
TEXTS = ["To get an A+ in deep generative models, students have to", "naïve café 🙂 日本語", " leading space\r\n\ttabs",
         "x", "<|endoftext|>after the end"]
N_POSITIONS = 32


def make_tokenizer():
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator([CORPUS], vocab_size=320, min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False)
    tok = transformers.GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                         unk_token="<|endoftext|>")
    return bpe, tok


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """(folder, transformers model, transformers tokenizer): a random tiny GPT-2 saved by transformers, safetensors only."""
    folder = tmp_path_factory.mktemp("hf-gpt2")
    bpe, tok = make_tokenizer()
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tok), n_positions=N_POSITIONS, n_embd=32, n_layer=2, n_head=4,
                                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():  # far from initialisation, so every path carries signal
            p.normal_(0, 0.3)
    model.generation_config.eos_token_id = None  # greedy runs for exactly max_new_tokens
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file() and not (folder / "pytorch_model.bin").exists()
    return folder, model, tok


@pytest.fixture(scope="module")
def zmodel(hf_folder):
    return zgpt2.from_transformers_folder(hf_folder[0])


def hf_per_token(model, tok, text):
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        logp = model(ids).logits.log_softmax(-1)
    return torch.cat([torch.tensor([float("nan")]), logp[0, :-1].gather(1, ids[0, 1:, None])[:, 0]])


def test_per_token_log_probs_equal_transformers(hf_folder, zmodel):
    _, model, tok = hf_folder
    for text in TEXTS:
        assert zmodel.space.encode(text).tolist() == tok.encode(text)
    lp = zmodel.log_prob(TEXTS, per_dim=True)
    for row, text in zip(lp, TEXTS, strict=True):
        ref = hf_per_token(model, tok, text)
        torch.testing.assert_close(row[: len(ref)], ref, rtol=0, atol=1e-5, equal_nan=True)
        assert torch.isnan(row[len(ref):]).all() and torch.isnan(row[0])  # first token: context only, not modelled
    totals = zmodel.log_prob(TEXTS)
    torch.testing.assert_close(totals, lp.nan_to_num().sum(1), rtol=0, atol=1e-4)
    assert torch.isfinite(zmodel.bits_per_byte(TEXTS)).all()


def test_greedy_generation_equals_transformers(hf_folder, zmodel):
    _, model, tok = hf_folder
    for prompt in ("To get an A+ in deep generative models, students have to", "日本語"):
        ids = torch.tensor([tok.encode(prompt)])
        new = N_POSITIONS - ids.shape[1]  # transformers cannot go past its context; zoo's window rule is tested elsewhere
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False, pad_token_id=0)
        assert ref.shape[1] == N_POSITIONS
        expected = prompt + tok.decode(ref[0, ids.shape[1]:])
        for naive in (False, True):
            assert zmodel.complete(prompt, max_new_chars=new, top_k=1, naive=naive) == expected
    start = torch.tensor([[tok.eos_token_id]])  # unconditional generation starts from <|endoftext|>
    ref = model.generate(start, attention_mask=torch.ones_like(start), max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert zmodel.sample(1, max_new_chars=12, top_k=1) == [tok.decode(ref[0, 1:])]


def test_kv_cache_sampling_equals_naive_past_the_context(zmodel):
    prompts = ["To get an A+", "café 🙂"]  # groups of different lengths; 40 new tokens cross the 32-token window
    for options in ({}, {"temperature": 0.8, "top_k": 20}, {"top_p": 0.9}):
        fast = zmodel.complete(prompts, max_new_chars=40, generator=torch.Generator().manual_seed(3), **options)
        naive = zmodel.complete(prompts, max_new_chars=40, generator=torch.Generator().manual_seed(3), naive=True, **options)
        assert fast == naive
        assert all(o.startswith(p) for o, p in zip(fast, prompts, strict=True))
    g = torch.Generator().manual_seed(5)
    assert zmodel.sample(2, max_new_chars=40, generator=g) == zmodel.sample(2, max_new_chars=40, generator=torch.Generator().manual_seed(5),
                                                                            naive=True)


def test_complete_returns_the_prompt_unchanged(zmodel):
    prompts = ["naïve café 🙂 日本語 \u0301 combining", "  two spaces\n\n", "<|endoftext|>"]
    for prompt, out in zip(prompts, zmodel.complete(prompts, max_new_chars=5, generator=torch.Generator().manual_seed(0)), strict=True):
        assert out.startswith(prompt) and len(out) > len(prompt)
    stopped = zmodel.complete("To get", max_new_chars=30, stop=" ", generator=torch.Generator().manual_seed(0))
    assert stopped.startswith("To get") and (stopped.endswith(" ") or " " not in stopped[len("To get"):])


def random_unicode(rng: random.Random, n: int) -> str:
    pools = [(0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x2FF), (0x370, 0x3FF), (0x600, 0x6FF), (0x3040, 0x30FF), (0x4E00, 0x9FFF),
             (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0x1F300, 0x1FAFF), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(pools)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def test_any_text_round_trips_through_the_space(hf_folder, zmodel, tmp_path):
    _, _, tok = hf_folder
    bpe, _ = make_tokenizer()
    bpe.save_model(str(tmp_path))  # vocab.json + merges.txt only: the older layout of GPT-2 repos
    merges_space = BPESpace.from_folder(tmp_path)
    rng = random.Random(0)
    texts = [random_unicode(rng, rng.randint(0, 40)) for _ in range(200)] + ["", "\r\n", "a" * 500, "<|endoftext|>" * 3, CORPUS]
    for text in texts:
        ids = zmodel.space.encode(text)
        assert zmodel.space.decode(ids) == text
        assert ids.tolist() == tok.encode(text)
        assert merges_space.encode(text).tolist() == ids.tolist()
        assert zmodel.space.encode(zmodel.space.decode(ids)).tolist() == ids.tolist()
    assert zmodel.space.bos is None and zmodel.space.start == tok.eos_token_id
    with pytest.raises(zoo.InvalidInputError):
        zmodel.space.encode("lone surrogate \ud800")
    with pytest.raises(zoo.InvalidInputError, match="é"):
        BPESpace.ascii().encode("café")


def test_gpt2_model_keys_and_mask_buffers_load(hf_folder, zmodel, tmp_path):
    """openai-community/gpt2 stores GPT2Model keys (no ``transformer.`` prefix, no lm_head) and the causal-mask buffers."""
    folder, model, tok = hf_folder
    for name in ("config.json", "tokenizer.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(folder / "model.safetensors").items() if k != "lm_head.weight"}
    for i in range(2):
        tensors[f"h.{i}.attn.bias"] = torch.ones(1, 1, N_POSITIONS, N_POSITIONS).tril()
        tensors[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    loaded = zgpt2.from_transformers_folder(tmp_path, sha256=zoo.checkpoint.sha256_file(tmp_path / "model.safetensors"))
    for key, value in zmodel.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(zoo.CheckpointError, match="sha256 mismatch"):
        zgpt2.from_transformers_folder(tmp_path, sha256="0" * 64)


def test_bad_folders_are_refused(hf_folder, tmp_path):
    folder, _, _ = hf_folder
    raw = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(raw))
    (tmp_path / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(zoo.CheckpointError, match="only pickle weights"):
        zgpt2.from_transformers_folder(tmp_path)
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({**raw, "scale_attn_by_inverse_layer_idx": True}))
    with pytest.raises(zoo.CheckpointError, match="scale_attn_by_inverse_layer_idx"):
        zgpt2.from_transformers_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**raw, "n_layer": 3}))
    with pytest.raises(zoo.CheckpointError, match="missing keys"):
        zgpt2.from_transformers_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(zoo.CheckpointError, match="no tokenizer"):
        zgpt2.from_transformers_folder(tmp_path)
    for bad in ({"n_embd": 15}, {"activation": "swish"}, {"slide": 16, "n_positions": 16}, {"n_inner": 0}):
        with pytest.raises(zoo.ConfigError):
            zoo.build("gpt2", "tiny", **bad)


def test_tiny_preset_scores_and_generates(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("gpt2", "tiny").eval()
    assert model.space == BPESpace.ascii(129) and model.config.n_positions == 16
    text = "hello world, a text longer than the sixteen-token context"
    lp = model.log_prob(text, per_dim=True)
    assert lp.shape == (1, len(text)) and torch.isnan(lp[0, 0]) and torch.isfinite(lp[0, 1:]).all()
    g = torch.Generator().manual_seed(0)
    assert model.sample(2, max_new_chars=40, generator=g) == model.sample(2, max_new_chars=40, generator=torch.Generator().manual_seed(0),
                                                                          naive=True)


def test_registry_entries_download_on_first_use_and_fail_clearly_offline(tmp_path, monkeypatch):
    for name, repo, layers in (("gpt2", "openai-community/gpt2", 12), ("distilgpt2", "distilbert/distilgpt2", 6)):
        info = zoo.model_info(name)
        assert info["family"] == "gpt2" and info["hub_repo"] == repo and info["config"]["n_layer"] == layers
        assert not info["bundled"] and "Not measured here" in info["description"]
        with pytest.raises(zoo.WeightsUnavailableError, match=repo):
            zoo.load(name, cache_dir=str(tmp_path), local_files_only=True)
    assert zoo.load("distilgpt2", pretrained=False).num_parameters() == 81_912_576




def test_transformers_folder_loads_through_local_dir(hf_folder, zmodel):
    folder, _, _ = hf_folder
    loaded = zoo.load(f"local-dir:{folder}")
    torch.testing.assert_close(loaded.log_prob(TEXTS, per_dim=True), zmodel.log_prob(TEXTS, per_dim=True), rtol=0, atol=0, equal_nan=True)


def test_save_pretrained_keeps_the_tokenizer(zmodel, tmp_path):
    zmodel.save_pretrained(tmp_path / "zoo-format")
    loaded = zoo.load(f"local-dir:{tmp_path / 'zoo-format'}")
    assert loaded.space == zmodel.space
    torch.testing.assert_close(loaded.log_prob(TEXTS), zmodel.log_prob(TEXTS), rtol=0, atol=0)


CLIENT = """
import json, sys, zoo, zoo.models.gpt2
spec = json.loads(sys.argv[1])
zoo.register_entry(zoo.Entry(**spec["entry"]))
out = {}
for name in spec["names"]:
    model = zoo.load(name, cache_dir=spec["cache"])
    out[name] = {"per_dim": model.log_prob(spec["texts"], per_dim=True).nan_to_num(-1.0).tolist(),
                 "completion": model.complete(spec["texts"][0], max_new_chars=8, top_k=1)}
print(json.dumps(out))
"""


def test_served_hub_repo_loads_through_hf_hub(hf_folder, zmodel, tmp_path):
    pytest.importorskip("olah")
    from .olah_server import OlahServer, commit_folder

    folder, _, _ = hf_folder
    sha = commit_folder(tmp_path / "olah" / "mirrors", "zoo-test/tiny-gpt2", folder, "transformers' save_pretrained")
    server = OlahServer(tmp_path / "olah").start()
    try:
        entry = {"name": "tiny-gpt2-served", "family": "gpt2", "config": dataclasses.asdict(zmodel.config), "hub_repo": "zoo-test/tiny-gpt2",
                 "revision": sha, "sha256": zoo.checkpoint.sha256_file(folder / "model.safetensors")}
        spec = {"names": [f"hf-hub:zoo-test/tiny-gpt2@{sha}", "tiny-gpt2-served"], "cache": str(tmp_path / "cache"), "texts": TEXTS,
                "entry": entry}
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CLIENT), json.dumps(spec)], env=server.client_env(tmp_path / "hf"),
                              capture_output=True, text=True, timeout=300)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    for result in json.loads(proc.stdout).values():  # through hf-hub: and through a registry entry pinned to the commit
        torch.testing.assert_close(torch.tensor(result["per_dim"]), zmodel.log_prob(TEXTS, per_dim=True).nan_to_num(-1.0), rtol=0, atol=0)
        assert result["completion"] == zmodel.complete(TEXTS[0], max_new_chars=8, top_k=1)


def test_tiny_gpt2_passes_the_conformance_suite():
    from zoo import conformance

    conformance.check_family("gpt2", "tiny")
