"""Parsing, validation, repair and fallback of the LLM's interest answers."""

from __future__ import annotations

import json

import jsonschema
import pytest

from llmrec.interests.config import ExtractConfig
from llmrec.interests.extract import backend_kwargs, fallback_interests, interest_schema, parse_interests, run_extraction
from llmrec.llm.jobs import read_results


def content(messages: list[dict]) -> str:
    c = messages[-1]["content"]
    return c if isinstance(c, str) else "".join(c)


GOOD = '[{"interest": "Sci-Fi Films", "weight": 0.3}, {"interest": "space opera", "weight": 0.9}]'


def test_parse_validates_sorts_and_caps():
    out = parse_interests("Sure! " + GOOD + " hope this helps", k=5)
    assert out == [{"interest": "space opera", "weight": 0.9}, {"interest": "sci-fi films", "weight": 0.3}]
    assert parse_interests(GOOD, k=1) == [{"interest": "space opera", "weight": 0.9}]
    jsonschema.validate(out, interest_schema(5))  # what we keep is what vLLM is asked to produce


def test_parse_closes_a_list_cut_by_the_length_cap():
    raw = '[{"interest": "jazz bars", "weight": 0.5}, {"interest": "late night", "wei'
    assert parse_interests(raw) == [{"interest": "jazz bars", "weight": 0.5}]


@pytest.mark.parametrize("raw, why", [
    ("I like movies", "no JSON list"),
    ('["drama", "comedy"]', "not an object"),
    ('[{"interest": "drama", "weight": 1.5}]', "weight 1.5"),
    ('[{"interest": "drama", "weight": "high"}]', "weight 'high'"),
    ('[{"interest": "a b c d e f g h", "weight": 0.2}]', "not a short phrase"),
    ('[{"interest": "drama"}]', "'interest' and 'weight'"),
    ("[]", "empty"),
])
def test_parse_rejects_non_conforming_answers(raw, why):
    with pytest.raises(ValueError, match=why):
        parse_interests(raw)


def test_fallback_salvages_phrases_then_categories_then_titles():
    got, src = fallback_interests('[{"interest": "Noir Films", "weight": 7}, {"interest": "heists"', "x", 5)
    assert src == "salvaged" and [g["interest"] for g in got] == ["noir films", "heists"]
    history = "Heat (Action, Crime), rated 5\nTitanic (Drama, Romance), rated 4\nRonin (Action), rated 3"
    got, src = fallback_interests("no json here", history, 2)
    # action 2 of the top-2 count 3 (action 2, crime 1 -> tie with drama/romance broken by first seen)
    assert src == "categories" and got == [{"interest": "action", "weight": round(2 / 3, 4)},
                                           {"interest": "crime", "weight": round(1 / 3, 4)}]
    got, src = fallback_interests("", "Dim Sum Garden\nSampan", 5)
    assert src == "titles" and [g["interest"] for g in got] == ["dim sum garden", "sampan"]


def test_malformed_llm_output_never_stops_the_job(tmp_path):
    """First answers: valid, garbage, garbage, truncated-valid. The repair turn fixes the second
    and not the third, which gets the recorded category fallback."""
    records = [{"id": f"u{i}", "history": f"Film {i} (Drama), rated 4"} for i in range(4)]
    first = [GOOD, "I cannot answer that", '{"interest": oops', '[{"interest": "drama", "weight": 0.5}, {"inte']
    repairs = {"u1": '[{"interest": "drama", "weight": 1}]', "u2": "still not json"}
    seen: list[list] = []

    def generate(messages):
        seen.append(messages)
        if len(seen) == 1:
            return first
        texts = [content(m) for m in messages]
        return [repairs["u1"] if "Film 1" in t else repairs["u2"] for t in texts]

    out = tmp_path / "job.jsonl"
    summary = run_extraction(records, ExtractConfig(batch_size=4, k=3), str(out), generate=generate, progress=False)
    assert (summary.calls, summary.failures, summary.repaired, summary.fallbacks) == (6, 2, 1, 1)
    rows = {r["id"]: r for r in read_results(out)}
    assert [rows[f"u{i}"]["status"] for i in range(4)] == ["ok", "repaired", "fallback", "ok"]
    assert rows["u1"]["parsed"]["interests"] == [{"interest": "drama", "weight": 1.0}]
    assert rows["u2"]["parsed"] == {"interests": [{"interest": "drama", "weight": 1.0}], "fallback": "categories"}
    assert rows["u2"]["attempts"] == ['{"interest": oops', "still not json"]
    # the repair turn shows the model its bad answer
    assert "This answer is not valid: I cannot answer that" in content(seen[1][0])
    json.dumps(rows)  # every line is plain JSON


# the fixed text of a prompt with a worked example (what small models echo)
PROMPT = ('Return a JSON list of 3 objects {"interest": short phrase, "weight": number}.\n'
          '[{"interest": "trail running", "weight": 0.6}, {"interest": "camping gear", "weight": 0.3}]')


def test_salvage_skips_json_keys_and_phrases_copied_from_the_prompt():
    # a SmolLM2-style answer (weight out of range, so it is salvaged): the worked example's phrase,
    # the instruction's words, a schema word used as a key, and two phrases of the user's own
    raw = '[{"interest": "hair care", "weight": 9}, "camping gear", "short phrase", "dry shampoo", "type": "x"]'
    got, src = fallback_interests(raw, "Dry Shampoo (Hair Care), rated 5", 5, PROMPT)
    assert src == "salvaged" and [g["interest"] for g in got] == ["hair care", "dry shampoo"]
    got, _ = fallback_interests(raw, "Dry Shampoo (Hair Care), rated 5", 5)  # no prompt text: only keys go
    assert [g["interest"] for g in got] == ["hair care", "camping gear", "short phrase", "dry shampoo"]
    # a prompt phrase the user's own history contains is the user's, not an echo
    got, _ = fallback_interests('["camping gear"]', "Camping Gear Bag (Outdoor)", 5, PROMPT)
    assert [g["interest"] for g in got] == ["camping gear"]


def test_parse_drops_prompt_echoes_and_rejects_an_answer_that_only_echoes():
    rec = {"id": "u", "history": "Dry Shampoo (Hair Care), rated 4"}
    raw = '[{"interest": "trail running", "weight": 0.6}, {"interest": "dry shampoo", "weight": 0.3}]'
    assert parse_interests(raw, rec, prompt_text=PROMPT) == [{"interest": "dry shampoo", "weight": 0.3}]
    with pytest.raises(ValueError, match="repeats the prompt"):
        parse_interests('[{"interest": "camping gear", "weight": 0.3}]', rec, prompt_text=PROMPT)
    assert parse_interests(raw, rec) == [{"interest": "trail running", "weight": 0.6},
                                         {"interest": "dry shampoo", "weight": 0.3}]  # no prompt, no rule


def test_refresh_rederives_from_recorded_answers_without_the_llm():
    from llmrec.interests.extract import Prompts, prompt_copies, refresh_fallbacks

    cfg = ExtractConfig(k=3)
    example = Prompts(cfg).fixed_text()
    assert "trail running" in example  # the shipped prompt's worked example (else this test proves nothing)
    hist = {"a": "Lipstick (Makeup), rated 5", "b": "Nail Polish (Nails), rated 4", "c": "Mascara (Makeup)"}
    results = [
        {"id": "a", "status": "ok", "output": '[{"interest": "trail running", "weight": 0.9}]',
         "parsed": {"interests": [{"interest": "trail running", "weight": 0.9}]}},
        {"id": "b", "status": "fallback", "output": '[{"weight": 2}, "type": "nail art"]',
         "parsed": {"interests": [{"interest": "type", "weight": 0.5}, {"interest": "nail art", "weight": 0.5}],
                    "fallback": "salvaged"}},
        {"id": "c", "status": "ok", "output": '[{"interest": "mascara", "weight": 1}]',
         "parsed": {"interests": [{"interest": "mascara", "weight": 1.0}]}},
    ]
    assert prompt_copies(results, hist, cfg) == 1
    new, changed = refresh_fallbacks(results, hist, cfg)
    assert changed == 2 and new[2] is results[2]
    assert new[0]["status"] == "fallback" and new[0]["parsed"] == {
        "interests": [{"interest": "makeup", "weight": 1.0}], "fallback": "categories"}
    # keys are no longer salvaged, so b falls through to its history's top category
    assert new[1]["parsed"] == {"interests": [{"interest": "nails", "weight": 1.0}], "fallback": "categories"}
    assert prompt_copies(new, hist, cfg) == 0


def test_vllm_engine_options_reach_the_backend_only_on_vllm():
    assert backend_kwargs(ExtractConfig(vllm_memory=0.45, vllm_eager=True)) == {}  # hf ignores them
    assert backend_kwargs(ExtractConfig(backend="vllm")) == {}  # vLLM's own defaults (compiled)
    assert backend_kwargs(ExtractConfig(backend="vllm", vllm_memory=0.45, vllm_eager=True)) == {
        "gpu_memory_utilization": 0.45, "enforce_eager": True}
