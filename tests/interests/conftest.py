"""Fixtures for the ESIM tests: a small grouped dataset, a scripted LLM, a job config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from llmrec.config import DataConfig
from llmrec.interests.config import ClusterConfig, ExtractConfig, InterestsConfig, UserTextConfig

GROUPS = {"Action": ["Explosion", "Car Chase", "Heist", "Shootout", "Rescue Mission", "Battlefield", "Bank Job",
                     "Jet Fighter", "Border Patrol", "Last Stand"],
          "Romance": ["Love Letters", "Wedding Day", "Summer Romance", "First Kiss", "Paris Love", "Heartstrings",
                      "Sweethearts", "Honeymoon", "Moonlight Dance", "Valentine"],
          "Animation": ["Cartoon Friends", "Talking Animals", "Toy Land", "Magic Forest", "Little Robot",
                        "Dragon Kid", "Puppy Tales", "Candy Kingdom", "Space Bunny", "Fairy Garden"]}


def write_grouped_dataset(folder: Path, *, users_per_group: int = 8, per_user: int = 7, seed: int = 0) -> Path:
    """RecBole atomic files: users of group g watch films of genre g only; rising timestamps."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    items = ["item_id:token\ttitle:token_seq\tgenre:token_seq"]
    t = 1_000_000
    for g, (genre, titles) in enumerate(GROUPS.items()):
        items += [f"i{g}_{j}\t{title}\t{genre}" for j, title in enumerate(titles)]
        for u in range(users_per_group):
            for j in rng.choice(len(titles), per_user, replace=False):
                t += int(rng.integers(1, 100))
                inter.append(f"u{g}_{u}\ti{g}_{j}\t{int(rng.integers(3, 6))}\t{t}")
    (folder / f"{folder.name}.inter").write_text("\n".join(inter) + "\n")
    (folder / f"{folder.name}.item").write_text("\n".join(items) + "\n")
    return folder


def scripted_answer(messages: list[dict]) -> str:
    """A deterministic stand-in LLM: the genres of the history, as the schema asks."""
    text = messages[-1]["content"]
    text = text if isinstance(text, str) else "".join(x for x in text if isinstance(x, str))
    genres = sorted(set(re.findall(r"\(([A-Za-z]+)\)", text)))
    return json.dumps([{"interest": f"{g.lower()} films", "weight": 0.8} for g in genres])


@pytest.fixture
def grouped_dir(tmp_path: Path) -> Path:
    return write_grouped_dataset(tmp_path / "grouped")


@pytest.fixture
def job_cfg(grouped_dir: Path, tmp_path: Path) -> InterestsConfig:
    return InterestsConfig(
        data=DataConfig(source="recbole", path=str(grouped_dir), cache_dir=str(tmp_path / "cache")),
        texts=UserTextConfig(window=10),
        cluster=ClusterConfig(preference="median"),
        extract=ExtractConfig(batch_size=2, k=3, max_new_tokens=48),
        out_dir=str(tmp_path / "job"))
