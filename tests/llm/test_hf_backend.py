"""HF backend and the shared prompt assembler on tiny config-built Llama / Qwen2 / GPT-2 models."""

from __future__ import annotations

import pytest
import torch

from llmrec.llm.backend import GenerationParams, LLMBackend
from llmrec.llm.hf import HFBackend
from tests.llm.conftest import ARCHS, tiny_lm

PROMPTS = ["the cat sat on the mat", "hello world", "explain why the user would enjoy the red book and the blue movie",
           "a dog", "the user likes the movie and the book"]


def backend(tok, arch, **kw):
    return HFBackend(tiny_lm(arch, len(tok)), tokenizer=tok, **kw)


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_greedy_equals_one_at_a_time(tok, arch):
    llm = backend(tok, arch, batch_size=8)
    assert isinstance(llm, LLMBackend)
    params = GenerationParams(max_new_tokens=12)
    batched = llm.generate(PROMPTS, params)
    single = [llm.generate([p], params)[0] for p in PROMPTS]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert any(len(g.token_ids) > 0 for g in batched)


@pytest.mark.parametrize("arch", ARCHS)
def test_soft_tokens_equal_to_their_text_give_the_same_output(tok, arch):
    llm = backend(tok, arch)
    soft = llm.embed_tokens(torch.tensor(tok("sat on the", add_special_tokens=False)["input_ids"]))
    text_req = "the cat sat on the mat"
    soft_req = ["the cat ", soft, " mat"]
    a = llm.assembler([text_req])
    b = llm.assembler([soft_req])
    assert torch.equal(a.attention_mask, b.attention_mask)
    assert torch.allclose(a.embeds, b.embeds)
    assert (b.ids == -1).sum() == 3
    params = GenerationParams(max_new_tokens=10)
    assert llm.generate([text_req], params)[0].token_ids == llm.generate([soft_req], params)[0].token_ids


def test_splice_is_one_scatter_in_row_order(tok):
    llm = backend(tok, "llama")
    s1, s2, s3 = torch.randn(2, 32), torch.randn(1, 32), torch.randn(3, 32)
    out = llm.assembler([["the ", s1, " cat ", s2], ["a ", s3]])
    assert torch.equal(out.embeds[0][out.ids[0] == -1], torch.cat([s1, s2]))
    assert torch.equal(out.embeds[1][out.ids[1] == -1], s3)
    assert out.attention_mask[1, 0] == 0  # left padded
    with pytest.raises(ValueError, match=r"\(n, hidden\)"):
        llm.assembler([["the ", torch.randn(32)]])


def test_gradients_reach_a_projection_through_the_frozen_llm(tok):
    llm = backend(tok, "qwen2")
    proj = torch.nn.Linear(8, llm.hidden_size)
    soft = proj(torch.randn(2, 8))  # (2, H) behaviour tokens
    logp = llm.forward_logprobs([["user record: ", soft, " explain"]], ["the red book"])
    assert logp[0].shape == (3,)
    (-logp[0].sum()).backward()
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in llm.model.parameters())


def test_loglik_matches_a_manual_forward(tok):
    llm = backend(tok, "llama")
    got = llm.loglik(["hello world", "the cat sat"], ["the mat", "on the red rug"])
    for ctx, tgt, lp in zip(["hello world", "the cat sat"], ["the mat", "on the red rug"], got):
        ids, _ = llm.assembler.token_ids(ctx)
        t = tok(tgt, add_special_tokens=False)["input_ids"]
        full = torch.tensor([ids + t])
        with torch.no_grad():
            logits = llm.model(input_ids=full).logits.log_softmax(-1)[0]
        expect = logits[torch.arange(len(ids) - 1, len(ids) + len(t) - 1), torch.tensor(t)]
        assert torch.allclose(lp, expect, atol=1e-5)


def test_sampling_is_seeded_and_stop_strings_cut(tok):
    llm = backend(tok, "llama")
    p = GenerationParams(max_new_tokens=8, temperature=1.0, seed=3)
    assert llm.generate(["the cat"], p)[0].token_ids == llm.generate(["the cat"], p)[0].token_ids
    text = llm.generate(["the cat"], GenerationParams(max_new_tokens=8))[0].text
    words = text.split()
    if len(words) >= 2:
        cut = llm.generate(["the cat"], GenerationParams(max_new_tokens=8, stop=[words[1]]))[0]
        assert words[1] not in cut.text.split()[1:] and cut.finish_reason == "stop"


def test_base_model_prompts_start_with_bos_and_no_template(tok):
    llm = backend(tok, "llama", use_chat_template=False)
    ids, _ = llm.assembler.token_ids("the cat sat")
    assert ids == [tok.bos_token_id] + tok("the cat sat", add_special_tokens=False)["input_ids"]
    assert llm.chat_template is None
