"""Prompt templates: every shipped file loads, placeholders are checked, hashes track content."""

from __future__ import annotations

import pytest
import torch

from llmrec.errors import ConfigError
from llmrec.llm.prompts import list_prompts, load_prompt


def test_shipped_templates_load():
    names = list_prompts()
    assert {"explanation", "micro_intention", "esim_interests", "text_profile"} <= set(names)
    for name in names:
        t = load_prompt(name)
        assert len(t.hash) == 12 and t.placeholders


def test_render_keeps_soft_tokens_in_place():
    t = load_prompt("explanation")
    u, i = torch.zeros(6, 4), torch.ones(6, 4)
    msgs = t.messages(user_tokens=u, item_tokens=i, title="Taco Riendo")
    assert msgs[0]["role"] == "system" and "50 words" in msgs[0]["content"]
    segs = msgs[1]["content"]
    assert segs[0] == "user record: " and segs[1] is u and segs[2] == " item record: " and segs[3] is i
    assert segs[4] == " item name: Taco Riendo"
    with pytest.raises(ConfigError, match=r"missing values \['title'\]"):
        t.render(user_tokens=u, item_tokens=i)


def test_placeholder_checks_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("placeholders: [a]\nuser: 'hello {a} and {b}'\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: placeholder\(s\) \['b'\] used but not declared"):
        load_prompt(bad)
    bad.write_text("placeholders: [a, c]\nuser: 'hello {a}'\n")
    with pytest.raises(ConfigError, match=r"\['c'\] declared but not used"):
        load_prompt(bad)
    bad.write_text("placeholders: [a]\nuser: 'hello {a}'\nsytem: x\n")
    with pytest.raises(ConfigError, match="unknown template key"):
        load_prompt(bad)
    good = tmp_path / "good.yaml"
    good.write_text("placeholders: [a]\nuser: 'hello {a}'\n")
    h1 = load_prompt(good).hash
    good.write_text("placeholders: [a]\nuser: 'hi {a}'\n")
    assert load_prompt(good).hash != h1


def test_few_shot_examples_come_before_the_real_question(tmp_path):
    t = load_prompt("micro_intention")
    msgs = t.messages(text="Great tacos and cheap beer.")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[2]["content"].startswith('["') and msgs[-1]["content"] == ["Great tacos and cheap beer."]
    bad = tmp_path / "bad.yaml"
    bad.write_text("user: '{x}'\nplaceholders: [x]\nexamples:\n  - {user: hi}\n")
    with pytest.raises(ConfigError, match=r"examples\[0\] must be a mapping with 'user' and 'assistant'"):
        load_prompt(bad)


def test_a_wheel_ships_every_prompt_template(tmp_path):
    """Templates are read at run time, so a non-editable install must carry them."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    from llmrec.llm.prompts import list_prompts

    pytest.importorskip("setuptools", reason="building the wheel without isolation needs setuptools")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(root)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("llmrec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert list_prompts() and {f"llmrec/prompts/{p}.yaml" for p in list_prompts()} <= names
