"""The explanation explorer in headless Chromium (Debian's, driven by Playwright): the whole flow by
keyboard against a finished tiny pipeline run, every request intercepted and checked to stay on
loopback, an axe-core check, screenshots under build/test-artifacts/.

Set-up: `make browser-env` (apt-get chromium, axe-core from the npm registry into build/axe-core);
`make test` runs it under CI=true, where this test fails instead of skipping."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from llmrec.serve.app import create_app
from llmrec.serve.explore import RunView
from tests.pipeline.conftest import finished_pipeline, tiny_llm  # noqa: F401  (fixtures)
from tests.serve.test_serve import Server

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "build" / "axe-core" / "package" / "axe.min.js"
ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if CHROMIUM is None:
        return "no chromium on PATH (make browser-env: apt-get install chromium)"
    if not AXE.exists():
        return f"axe-core not at {AXE} (make browser-env: npm pack axe-core)"
    return None


@pytest.fixture
def browser_ready():
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {why}")
        pytest.skip(why)


def _tab_to(page, element_id: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} is not reachable by Tab")


def _tab_to_text(page, text: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if text in (page.evaluate("document.activeElement && document.activeElement.textContent") or ""):
            return
    raise AssertionError(f"no focusable element with {text!r}")


def test_explorer_flow_by_keyboard_stays_on_loopback(browser_ready, finished_pipeline):  # noqa: F811
    from playwright.sync_api import sync_playwright

    view = RunView.from_pipeline(finished_pipeline)
    user = view.data.user_vocab[1]
    picked = [view.data.item_vocab[i] for i in (1, 2, 3)]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    outside: list[str] = []

    def intercept(route):
        url = route.request.url
        requests.append(url)
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    with Server(create_app(view.rec, view.ex, explorer=view)) as client, sync_playwright() as p:
        base = str(client.base_url)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.route("**/*", intercept)
            page.goto(f"{base}/explore")
            page.wait_for_function("document.getElementById('model').textContent.includes('Explainer')")

            _tab_to(page, "q")  # search by id, keyboard only
            page.keyboard.type(user)
            page.keyboard.press("Enter")
            page.wait_for_selector("#results button")
            _tab_to_text(page, f"user {user}")
            page.keyboard.press("Enter")
            page.wait_for_function("document.querySelectorAll('#recs [data-testid=evidence]').length === 5",
                                   timeout=60_000)
            texts = page.locator("#recs [data-testid=explanation]").all_inner_texts()
            assert len(texts) == 5 and all(t.strip() for t in texts)
            assert all("Evidence" in t for t in page.locator("#recs [data-testid=evidence]").all_inner_texts())
            assert page.locator("#interests").inner_text().strip()
            assert page.locator("#history li").count() > 0 and page.locator("#tokens li").count() > 0
            page.screenshot(path=str(ARTIFACTS / "explorer-user.png"), full_page=True)

            _tab_to(page, "counterfactual")
            page.keyboard.press("Space")
            page.wait_for_function("document.querySelectorAll('#recs [data-testid=control]').length === 5",
                                   timeout=60_000)
            assert "Counterfactual" in page.locator("#recs [data-testid=control]").first.inner_text()
            page.screenshot(path=str(ARTIFACTS / "explorer-counterfactual.png"), full_page=True)

            _tab_to(page, "cold-items")
            page.keyboard.type(", ".join(picked))
            page.keyboard.press("Enter")
            page.wait_for_function("document.querySelectorAll('#cold-recs [data-testid=evidence]').length === 5",
                                   timeout=60_000)
            cold = page.locator("#cold-recs [data-testid=evidence]").all_inner_texts()
            assert all("liked before" in t for t in cold)  # the picked items are the new user's evidence
            page.screenshot(path=str(ARTIFACTS / "explorer-cold-start.png"), full_page=True)

            page.add_script_tag(path=str(AXE))
            result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            serious = [(v["id"], v["impact"], v["help"]) for v in result["violations"]
                       if v["impact"] in ("serious", "critical")]
            assert serious == [], serious
        finally:
            browser.close()
    assert outside == [], outside
    assert any(u.endswith("/explore/explore.js") for u in requests)
    assert any("/v1/explain/counterfactual" in u for u in requests)
