"""The web console and the chat page in headless Chromium, against a live ragloop (bundled
model, extractive answers, sample corpus): chat with feedback, sign in, label misses from the
inbox with the keyboard, start a retrain and watch it progress without a reload until the gate
promotes it, read its gate report, roll back through the confirmation page, manage documents
and keys, sign out. axe-core audits every page on the way (no serious or critical violation).
Screenshots of every page go to docs/console/ (docs/console.md shows them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ragloop.core.storage.querylog import LABELLED_SOURCES
from ragloop.service.console.stats import NOT_ANSWERABLE
from tests.browser.chromium import open_page
from tests.browser.console_app import (
    ADMIN_TOKEN,
    GATE_SET,
    SCREENSHOTS,
    axe_source,
    chromium,
    live_console,
)

pytestmark = pytest.mark.integration
__all__ = ["axe_source", "chromium", "live_console"]  # fixtures

#: Misses labelled from the inbox with the keyboard after the chat's (newest first there).
INBOX_LABELLED = (
    "Why do most coasts see two high tides daily?",
    "What do cleaner wrasse eat off larger reef fish?",
    "What gas does yeast release that inflates dough?",
    "Why does sticky magma explode into ash?",
)
#: The axe impacts that fail the test.
BLOCKING = ("serious", "critical")
AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
  }));
}"""


def _offline(route: Any) -> None:
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    else:
        route.abort()


class Audit:
    """axe-core run on each page visited; the findings by page."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.found: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, page: Any, name: str) -> None:
        # Evaluated over the DevTools protocol: the pages' CSP (no inline script) is untouched.
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(self.source)
        self.found[name] = page.evaluate(AXE_RUN)

    def blocking(self) -> dict[str, list[dict[str, Any]]]:
        """Serious and critical violations, by page."""
        out = {}
        for name, violations in self.found.items():
            bad = [v for v in violations if v["impact"] in BLOCKING]
            if bad:
                out[name] = bad
        return out


def nav(page: Any, name: str) -> Any:
    """A link of the console's navigation."""
    return page.get_by_role("navigation", name="Console").get_by_role("link", name=name)


def test_console_chat_label_retrain_roll_back_sign_out(
    chromium: str, axe_source: str, live_console: tuple[FastAPI, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    app, url = live_console
    state = app.state.rl
    # Misses logged through the API (thumbs down), oldest first, beside the one the chat page
    # makes: one the corpus cannot answer, then four that the longer documents answer.
    for question in ("Who won the 1998 world cup?", *INBOX_LABELLED):
        out = httpx.post(f"{url}/v1/query", json={"question": question}, timeout=60).json()
        httpx.post(
            f"{url}/v1/feedback", json={"query_id": out["query_id"], "rating": "down"}, timeout=60
        ).raise_for_status()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots: set[str] = set()

    def shot(page: Any, name: str, full: bool = False) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full)
        shots.add(name)

    audit = Audit(axe_source)
    problems: list[str] = []
    with sync_playwright() as pw, open_page(pw, tmp_path / "profile", 1280, 860, problems) as page:
        page.on(
            "console",
            # the wrong token's 401 page is expected; nothing else may fail
            lambda m: (
                problems.append(f"console: {m.text}")
                if m.type == "error" and "status of 401" not in m.text
                else None
            ),
        )
        page.route("**/*", _offline)

        # ---- chat: ask, streamed answer with numbered sources, thumbs down ----
        page.goto(f"{url}/chat")
        page.get_by_label("Question").fill("What causes scurvy?")
        page.get_by_role("button", name="Ask").click()
        expect(page.locator("#answer")).to_contain_text("vitamin C", timeout=60_000)
        expect(page.locator("#sources li").first).to_contain_text("[1]")
        expect(page.get_by_role("button", name="Bad answer")).to_be_enabled()
        page.get_by_role("button", name="Bad answer").click()
        expect(page.locator("#chat-status")).to_contain_text("Thanks")
        # ... and a second question whose first source is named as the answer
        page.get_by_label("Question").fill("What does bread need?")
        page.get_by_role("button", name="Ask").click()
        expect(page.get_by_role("button", name="Source 1 answered it")).to_be_enabled(
            timeout=60_000
        )
        page.get_by_role("button", name="Source 1 answered it").click()
        expect(page.locator("#chat-status")).to_contain_text("labelled example")
        audit(page, "chat")
        shot(page, "chat")

        # ---- sign in (a wrong token first) ----
        page.goto(f"{url}/console/misses")
        expect(page).to_have_url(re.compile(r"/console/login\?next="))
        audit(page, "sign-in")
        shot(page, "login")
        page.get_by_label("Admin token").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("wrong admin token")
        audit(page, "sign-in, wrong token")
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/console/misses$"))

        # ---- the inbox: the chat's dislike is there, newest first ----
        first = page.locator(".misslist li").first
        expect(first).to_contain_text("What causes scurvy?")
        expect(page.locator(".detail h2")).to_have_text("What causes scurvy?")
        audit(page, "misses")
        shot(page, "inbox")
        # "/" to search, rephrase, results replace in place; 1 marks; l saves and moves on
        page.keyboard.press("/")
        expect(page.locator("#q")).to_be_focused()
        page.locator("#q").fill("lack of vitamin C")
        with page.expect_response(lambda r: "/search?q=" in r.url) as searched:
            page.keyboard.press("Enter")
        assert searched.value.ok
        expect(page.locator("#results li").first).to_contain_text("vitamin C")
        expect(page.locator("#action-status")).to_have_text("")
        page.keyboard.press("Escape")
        page.keyboard.press("1")
        expect(page.locator("#mark-1")).to_be_checked()
        page.keyboard.press("l")
        expect(page.locator(".detail h2")).not_to_have_text("What causes scurvy?")
        # the next four: passage 1 of the live retriever's results for the question itself
        for question in reversed(INBOX_LABELLED):
            expect(page.locator(".detail h2")).to_have_text(question)
            page.wait_for_load_state("load")
            page.keyboard.press("1")
            expect(page.locator("#mark-1")).to_be_checked()
            page.keyboard.press("l")
            expect(page.locator(".detail h2")).not_to_have_text(question)
        # the last: not answerable, with "n"
        expect(page.locator(".detail h2")).to_have_text("Who won the 1998 world cup?")
        page.wait_for_load_state("load")
        page.keyboard.press("n")
        expect(page.locator("#action-status")).to_contain_text("not answerable")
        page.wait_for_url(re.compile(r"/console/misses"))
        page.goto(f"{url}/console/misses")
        expect(page.locator(".misslist .badge.labelled")).to_have_count(5)
        expect(page.locator(".misslist .badge.not_answerable")).to_have_count(1)
        page.keyboard.press("j")
        expect(page.locator(".misslist li.selected")).not_to_contain_text("scurvy")

        # ---- overview before any retrain ----
        nav(page, "Overview").click()
        expect(page.locator("#n-not-answerable")).to_have_text("1")
        expect(page.locator("#no-gates")).to_be_visible()
        expect(page.locator("#misses-chart .seg.r-negative_feedback")).to_have_count(1)

        # ---- a retrain, followed live (no reload), until the gate promotes it ----
        nav(page, "Jobs").click()
        audit(page, "jobs")
        page.evaluate("window.__samePage = true")
        page.get_by_label("pseudo").uncheck()
        page.get_by_label("Epochs").fill("4")
        page.get_by_label("Batch size").fill("4")
        page.get_by_label("Learning rate").fill("0.0001")
        page.get_by_label("Chunks for synthetic questions").fill("100")
        # Gated on the support set's 12 test questions (none trained on), with the
        # default margin: console_app.GATE_QUESTIONS.
        page.get_by_label("Fewest gate questions").fill("10")
        page.get_by_label("Gate dataset folder").fill(GATE_SET)
        expect(page.get_by_label("Gate split")).to_have_value("test")
        page.get_by_role("button", name="Start retrain").click()
        expect(page.locator("#job")).to_be_visible()
        seen: list[tuple[str, str]] = []
        losses: set[str] = set()  # the worker's "training step N/M, loss X" messages seen
        final = {"promoted", "rejected", "failed", "cancelled"}
        for _ in range(600):  # up to ~5 minutes on two cores
            job_state = page.locator("#job-state").inner_text()
            percent = page.locator("#job-percent").inner_text()
            if ", loss " in (text := page.locator("#job-message").inner_text()):
                losses.add(text)
            if not seen or seen[-1] != (job_state, percent):
                seen.append((job_state, percent))
                if len(seen) == 3:
                    shot(page, "jobs")
            if job_state in final:
                break
            page.wait_for_timeout(500)
        assert page.evaluate("window.__samePage") is True, "the jobs page reloaded"
        message = page.locator("#job-message").inner_text()
        assert len(seen) >= 3, f"progress never moved: {seen} ({message})"
        assert seen[-1][0] in final, f"the job did not finish: {seen}"
        assert seen[-1][0] != "failed", page.locator("#job-log-text").inner_text()
        print("retrain states seen by the page:", seen, message, f"{len(losses)} losses")
        # the loss curve drew a point for each training step's loss the page saw
        if len(losses) >= 2:
            expect(page.locator("#loss-figure")).to_be_visible()
            points = int(page.locator("#loss-curve").get_attribute("data-points") or 0)
            assert points >= 2, (points, losses)
            assert len(page.locator("#loss-line").get_attribute("points").split()) == points
        assert seen[-1][0] == "promoted", f"the gate refused the candidate: {message}"
        version = state.runtime.catalog.active_version().version
        assert version.startswith("ft-") and message == f"{version} is active"
        gate = state.runtime.catalog.get_version(version).info["gate"]
        print("gate:", gate["reason"], gate["current"]["ndcg@10"], gate["candidate"]["ndcg@10"])
        assert gate["gate_set"] == f"{GATE_SET}/test" and gate["n_queries"] == 12
        assert gate["delta"] >= gate["margin"] > 0  # a real gain, over the default margin
        assert gate["retrieval"] == "dense"  # as the app serves (RAGLOOP_RETRIEVAL)
        audit(page, "jobs, promoted")

        # ---- the overview plots the gate; the versions page shows the new version ----
        nav(page, "Overview").click()
        expect(page.locator("#active-version")).to_have_text(version)
        expect(page.locator(f'#metric-plot g[data-version="{version}"]')).to_have_count(1)
        audit(page, "overview")
        shot(page, "overview", full=True)

        nav(page, "Versions").click()
        serving = page.locator("tr.active")
        expect(serving).to_contain_text(version)
        expect(serving).to_contain_text("serving")
        expect(serving).to_contain_text("promoted")
        audit(page, "versions")
        shot(page, "versions")

        # its gate report beside the version it challenged
        page.get_by_role("link", name=version, exact=True).click()
        expect(page.locator("h1")).to_contain_text(version)
        expect(page.locator("#gate-decision")).to_contain_text("Promoted")
        expect(page.locator("#gate-metrics")).to_contain_text("ndcg@10")
        expect(page.locator("#gate-metrics thead")).to_contain_text("base")
        expect(page.locator("#per-question")).to_contain_text("On 12 gate questions")
        expect(page.locator("#question-wins caption")).to_contain_text("Largest wins")
        expect(page.locator("#training-manifest")).to_contain_text("synthetic")
        audit(page, "version report")
        shot(page, "version", full=True)

        # ---- roll back through the confirmation page ----
        page.get_by_role("link", name="All versions").click()
        page.get_by_role("link", name="Activate base…").click()
        expect(page.locator("h1")).to_have_text("Activate base?")
        audit(page, "activate confirmation")
        page.get_by_role("button", name="Yes, activate base").click()
        expect(page).to_have_url(re.compile(r"/console/versions$"))
        expect(page.locator("tr.active")).to_contain_text("base")
        expect(page.locator("tr", has_text=version)).to_contain_text("retired")
        expect(
            page.get_by_role("link", name=f"Activate {version}…")
        ).to_be_visible()  # and forward again, if wanted
        assert state.runtime.catalog.active_version().version == "base"

        # ---- documents and API keys ----
        nav(page, "Documents").click()
        expect(page.locator("table")).to_contain_text("Ocean tides and the moon")
        audit(page, "documents")
        shot(page, "documents", full=True)
        nav(page, "API keys").click()
        page.get_by_label("Name").fill("website widget")
        page.get_by_role("button", name="Create key").click()
        expect(page.locator("#new-key")).to_have_value(re.compile(r"^rl_"))
        audit(page, "keys")
        shot(page, "keys")

        # ---- sign out: the console is closed again ----
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/console/login$"))
        page.goto(f"{url}/console/")
        expect(page).to_have_url(re.compile(r"/console/login\?next="))

    for name, violations in audit.found.items():
        for v in violations:
            print(f"axe {name}: {v['impact']} {v['id']}: {v['help']} {v['nodes']}")
    assert not audit.blocking(), audit.blocking()
    assert shots == {
        "chat",
        "login",
        "inbox",
        "jobs",
        "overview",
        "versions",
        "version",
        "documents",
        "keys",
    }
    labelled = state.querylog.pairs(LABELLED_SOURCES)
    questions = {p["question"] for p in labelled}
    assert {"What causes scurvy?", "What does bread need?", *INBOX_LABELLED} <= questions
    # the five labelled from the inbox: one pair each (passage 1, or the rephrased search's)
    inbox = {"What causes scurvy?", *INBOX_LABELLED}
    assert sum(p["question"] in inbox for p in labelled) == 5
    assert len(state.querylog.pairs(NOT_ANSWERABLE)) == 1
    assert not problems, problems
