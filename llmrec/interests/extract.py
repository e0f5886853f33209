"""ESIM extraction: the LLM names K weighted interests for each representative user.

Answers must be a JSON list of ``{"interest": phrase, "weight": 0..1}`` (``interest_schema``).
vLLM enforces that schema with structured output; on HF the answer is parsed and validated, a
non-conforming answer gets one repair turn (``prompts/esim_interests_repair.yaml``), and what still
fails gets a recorded fallback: phrases salvaged from the answer, else the user's most frequent
training categories. Every answer, attempt and status is kept in the job's JSONL, so a bad answer
never stops the job and is never silent. The job runs on the LLM runtime's resumable JobRunner.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Any, Callable, Sequence

from llmrec.interests.config import ExtractConfig

MAX_WORDS = 6


def interest_schema(k: int) -> dict:
    item = {"type": "object", "additionalProperties": False, "required": ["interest", "weight"],
            "properties": {"interest": {"type": "string", "minLength": 2, "maxLength": 60},
                           "weight": {"type": "number", "minimum": 0, "maximum": 1}}}
    return {"type": "array", "minItems": 1, "maxItems": k, "items": item}


def _phrase(value: Any) -> str:
    return " ".join(str(value).strip().strip(".").lower().split())


def copied_from_prompt(phrase: str, history: str, prompt_text: str) -> bool:
    """True when the phrase is in the prompt's fixed text (instruction, worked example) but not in
    the user's history: an echo of the prompt, not an interest of this user."""
    def has(text: str) -> bool:
        return re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", " ".join(text.lower().split())) is not None

    return bool(prompt_text) and has(prompt_text) and not has(history)


def _json_list(raw: str) -> list:
    """The first JSON list in the answer; a list cut off by the length cap is closed after its
    last complete object."""
    start = raw.find("[")
    if start < 0:
        raise ValueError("no JSON list in the answer")
    body = raw[start:]
    try:
        value, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError:
        cut = body.rfind("}")
        if cut < 0:
            raise ValueError("no complete object in the answer") from None
        value = json.loads(body[:cut + 1] + "]")
    if not isinstance(value, list):
        raise ValueError("not a JSON list")
    return value


def parse_interests(raw: str, record: dict | None = None, *, k: int = 5, prompt_text: str = "") -> list[dict]:
    """Validated ``[{"interest": str, "weight": float}]``, at most k, highest weight first.
    Phrases copied from the prompt (``copied_from_prompt``) are dropped. Raises ValueError when the
    answer does not conform or only repeats the prompt (the runner then repairs or falls back)."""
    out: list[dict] = []
    copied = 0
    history = (record or {}).get("history", "")
    for i, obj in enumerate(_json_list(raw)):
        if not isinstance(obj, dict) or "interest" not in obj or "weight" not in obj:
            raise ValueError(f"item {i} is not an object with 'interest' and 'weight'")
        phrase, weight = _phrase(obj["interest"]), obj["weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ValueError(f"item {i}: weight {weight!r} is not a number in [0, 1]")
        if not phrase or len(phrase.split()) > MAX_WORDS:
            raise ValueError(f"item {i}: interest {obj['interest']!r} is not a short phrase")
        if copied_from_prompt(phrase, history, prompt_text):
            copied += 1
        elif phrase not in {o["interest"] for o in out}:
            out.append({"interest": phrase, "weight": float(weight)})
    if not out:
        raise ValueError("every interest repeats the prompt's text" if copied else "empty list")
    return sorted(out, key=lambda o: -o["weight"])[:k]


def fallback_interests(raw: str, history: str, k: int, prompt_text: str = "") -> tuple[list[dict], str]:
    """(interests, source): quoted phrases salvaged from a malformed answer, else the most frequent
    categories of the history text (the parenthesised part of each line), else its first titles.
    A salvaged phrase is a quoted value, never a JSON key (a string followed by ':'), and never text
    the answer copied from the prompt (``prompt_text``: its fixed part) rather than from the user's
    history: small models echo the worked example's phrases and the schema's words."""
    quoted = []
    for q in re.findall(r'"interest"\s*:\s*"([^"\n]{2,60})"|(?:\[|,)\s*"([^"\n]{2,60})"(?!\s*:)', raw):
        p = _phrase(q[0] or q[1])
        if (p and len(p.split()) <= MAX_WORDS and p not in quoted and p not in ("interest", "weight")
                and not copied_from_prompt(p, history, prompt_text)):
            quoted.append(p)
    if quoted:
        return [{"interest": p, "weight": round(1 / len(quoted[:k]), 4)} for p in quoted[:k]], "salvaged"
    cats = Counter(c.strip().lower() for line in history.splitlines()
                   for group in re.findall(r"\(([^()]*)\)", line)[-1:] for c in group.split(",") if c.strip())
    if cats:
        top = cats.most_common(k)
        total = sum(n for _, n in top)
        return [{"interest": c, "weight": round(n / total, 4)} for c, n in top], "categories"
    titles = [_phrase(line.split("(")[0].split(",")[0]) for line in history.splitlines() if line.strip()][:k]
    return [{"interest": t, "weight": round(1 / len(titles), 4)} for t in titles], "titles"


def prompt_hash(cfg: ExtractConfig) -> str:
    from llmrec.llm.prompts import load_prompt

    parts = [load_prompt(cfg.prompt).sha256, load_prompt(cfg.prompt + "_repair").sha256,
             f"k={cfg.k}|max_new_tokens={cfg.max_new_tokens}|backend={cfg.backend}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


class Prompts:
    """Chat messages for a first ask and for a repair turn."""

    def __init__(self, cfg: ExtractConfig):
        from llmrec.llm.prompts import load_prompt

        self.ask, self.repair, self.k = load_prompt(cfg.prompt), load_prompt(cfg.prompt + "_repair"), cfg.k

    def first(self, record: dict) -> list[dict]:
        return self.ask.messages(history=record["history"], k=str(self.k))

    def again(self, record: dict, answer: str) -> list[dict]:
        return self.repair.messages(history=record["history"], k=str(self.k), answer=answer.strip()[:300] or "(empty)")

    def fixed_text(self) -> str:
        """What both prompts say besides any history: the system line, the worked example's
        answer and the instruction, which an answer must not copy to count as an interest. The
        worked example's own history is left out: its words ("hydration") can be real interests."""
        parts = [self.ask.system, self.repair.system, *(answer for _, answer in self.ask.examples),
                 *self.ask.render(history="", k=str(self.k)), *self.repair.render(history="", k=str(self.k), answer="")]
        return "\n".join(p for p in parts if isinstance(p, str) and p)


def generation_params(cfg: ExtractConfig):
    from llmrec.llm.backend import GenerationParams

    schema = interest_schema(cfg.k) if cfg.backend == "vllm" else None
    return GenerationParams(max_new_tokens=cfg.max_new_tokens, json_schema=schema)


def backend_kwargs(cfg: ExtractConfig) -> dict:
    if cfg.backend != "vllm":
        return {}
    return {**({"gpu_memory_utilization": cfg.vllm_memory} if cfg.vllm_memory else {}),
            **({"enforce_eager": True} if cfg.vllm_eager else {})}


def local_generate(cfg: ExtractConfig, llm: Any = None) -> Callable[[Sequence[list[dict]]], list[str]]:
    """messages -> answers through a backend in this process, loaded at the first call (a rerun
    whose answers are all on record never loads the LLM)."""
    from llmrec.llm.factory import load_backend

    loaded = [llm]
    params = generation_params(cfg)

    def generate(messages: Sequence[list[dict]]) -> list[str]:
        if loaded[0] is None:
            loaded[0] = load_backend(cfg.llm, backend=cfg.backend, batch_size=cfg.batch_size, **backend_kwargs(cfg))
        return [g.text for g in loaded[0].generate(list(messages), params)]

    return generate


def run_extraction(records: list[dict], cfg: ExtractConfig, output: str, *, generate: Callable | None = None,
                   llm: Any = None, model_name: str | None = None, limit: int | None = None,
                   progress: bool = True):
    """Ask the LLM for each record ({"id", "history"}); resumable through ``output``."""
    from llmrec.llm.jobs import JobRunner

    prompts = Prompts(cfg)
    if generate is None:
        generate = local_generate(cfg, llm)
    runner = JobRunner(output, model=model_name or cfg.llm, prompt_hash=prompt_hash(cfg), batch_size=cfg.batch_size,
                       repair_retries=cfg.repair_retries, progress=progress, desc="interests")
    last: dict[str, str] = {}

    def call(batch: Sequence[dict]) -> list[str]:
        texts = generate([prompts.first(r) for r in batch])
        last.update({r["id"]: t for r, t in zip(batch, texts)})
        return texts

    def repair(batch: Sequence[dict], answers: Sequence[str]) -> list[str]:
        texts = generate([prompts.again(r, a) for r, a in zip(batch, answers)])
        last.update({r["id"]: t for r, t in zip(batch, texts)})
        return texts

    fixed = prompts.fixed_text()

    def fallback(record: dict) -> dict:
        interests, source = fallback_interests(last.get(record["id"], ""), record["history"], cfg.k, fixed)
        return {"interests": interests, "fallback": source}

    return runner.run(records, call, parse=lambda raw, rec: {"interests": parse_interests(raw, rec, k=cfg.k, prompt_text=fixed)},
                      repair=repair, fallback=fallback, limit=limit)


def refresh_fallbacks(results: list[dict], histories: dict[str, str], cfg: ExtractConfig) -> tuple[list[dict], int]:
    """The job's results derived again from their recorded last answers under the current parse and
    salvage rules (no LLM call), and how many changed: a valid answer that now fails (e.g. it only
    repeats the prompt's example) becomes a fallback, and every fallback is salvaged again. Both
    are pure functions of (answer, history, k), so an artifact rebuilt after a rule fix needs no
    new extraction; the JSONL keeps what was decided at the time."""
    fixed, out, changed = Prompts(cfg).fixed_text(), [], 0
    for r in results:
        if r["id"] not in histories:
            out.append(r)
            continue
        record = {"id": r["id"], "history": histories[r["id"]]}
        new, status = r["parsed"], r["status"]
        if status != "fallback":
            try:
                new = {"interests": parse_interests(r["output"], record, k=cfg.k, prompt_text=fixed)}
            except ValueError:
                status = "fallback"
        if status == "fallback":
            interests, source = fallback_interests(r["output"], record["history"], cfg.k, fixed)
            new = {"interests": interests, "fallback": source}
        if new != r["parsed"] or status != r["status"]:
            changed += 1
            r = {**r, "parsed": new, "status": status}
        out.append(r)
    return out, changed


def prompt_copies(results: list[dict], histories: dict[str, str], cfg: ExtractConfig) -> int:
    """Representatives whose interests include a phrase copied from the prompt (see
    ``copied_from_prompt``). Run on results the current rules produced it is a check and should be 0;
    on results recorded under older rules it counts the echoes a refresh would remove."""
    fixed = Prompts(cfg).fixed_text()
    return sum(any(copied_from_prompt(i["interest"], histories.get(r["id"], ""), fixed)
                   for i in (r["parsed"] or {}).get("interests", [])) for r in results)
