"""The web console and the chat page in headless Chromium, against a live ragloop (bundled
model, extractive answers, sample corpus): chat with feedback, sign in, label misses from the
inbox with the keyboard, start a retrain and watch it progress without a reload, sign out.
Screenshots go to docs/console/ (docs/console.md shows them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ragloop.core.storage.querylog import LABELLED_SOURCES
from ragloop.service.console.stats import NOT_ANSWERABLE
from tests.browser.console_app import (
    ADMIN_TOKEN,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    chromium,
    live_console,
)

pytestmark = pytest.mark.integration
__all__ = ["chromium", "live_console"]  # fixtures


def _offline(route: Any) -> None:
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    else:
        route.abort()


def test_console_chat_label_retrain_sign_out(
    chromium: str, live_console: tuple[FastAPI, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    app, url = live_console
    state = app.state.rl
    # Two misses logged through the API beside the one the chat page makes.
    for question in ("Which animals live on a coral reef?", "Who won the 1998 world cup?"):
        out = httpx.post(f"{url}/v1/query", json={"question": question}, timeout=60).json()
        httpx.post(
            f"{url}/v1/feedback", json={"query_id": out["query_id"], "rating": "down"}, timeout=60
        ).raise_for_status()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 860},
        )
        try:
            page = context.new_page()
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
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
            page.screenshot(path=str(SCREENSHOTS / "chat.png"))

            # ---- sign in (a wrong token first) ----
            page.goto(f"{url}/console/misses")
            expect(page).to_have_url(re.compile(r"/console/login\?next="))
            page.get_by_label("Admin token").fill("wrong")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_contain_text("wrong admin token")
            page.get_by_label("Admin token").fill(ADMIN_TOKEN)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(re.compile(r"/console/misses$"))

            # ---- the inbox: the chat's dislike is there, newest first ----
            first = page.locator(".misslist li").first
            expect(first).to_contain_text("What causes scurvy?")
            expect(page.locator(".detail h2")).to_have_text("What causes scurvy?")
            page.screenshot(path=str(SCREENSHOTS / "inbox.png"))
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
            # the next miss: not answerable, with "n"
            page.keyboard.press("n")
            expect(page.locator("#action-status")).to_contain_text("not answerable")
            page.wait_for_url(re.compile(r"/console/misses"))
            page.goto(f"{url}/console/misses")
            expect(page.locator(".misslist .badge.labelled")).to_have_count(1)
            expect(page.locator(".misslist .badge.not_answerable")).to_have_count(1)
            page.keyboard.press("j")
            expect(page.locator(".misslist li.selected")).not_to_contain_text("scurvy")

            # ---- overview ----
            page.get_by_role("link", name="Overview").click()
            expect(page.locator("#n-not-answerable")).to_have_text("1")
            page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

            # ---- a retrain, followed live (no reload) ----
            page.get_by_role("link", name="Jobs").click()
            page.evaluate("window.__samePage = true")
            page.get_by_label("pseudo").uncheck()
            page.get_by_label("Chunks for synthetic questions").fill("100")
            page.get_by_label("Fewest gate questions").fill("2")
            page.get_by_role("button", name="Start retrain").click()
            expect(page.locator("#job")).to_be_visible()
            seen: list[tuple[str, str]] = []
            final = {"promoted", "rejected", "failed", "cancelled"}
            for _ in range(600):  # up to ~5 minutes on two cores
                job_state = page.locator("#job-state").inner_text()
                percent = page.locator("#job-percent").inner_text()
                if not seen or seen[-1] != (job_state, percent):
                    seen.append((job_state, percent))
                    if len(seen) == 3:
                        page.screenshot(path=str(SCREENSHOTS / "jobs.png"))
                if job_state in final:
                    break
                page.wait_for_timeout(500)
            assert page.evaluate("window.__samePage") is True, "the jobs page reloaded"
            message = page.locator("#job-message").inner_text()
            assert len(seen) >= 3, f"progress never moved: {seen} ({message})"
            assert seen[-1][0] in final, f"the job did not finish: {seen}"
            assert seen[-1][0] != "failed", page.locator("#job-log-text").inner_text()
            print("retrain states seen by the page:", seen, message)

            page.get_by_role("link", name="Versions").click()
            expect(page.locator("tr.active")).to_contain_text("serving")
            page.screenshot(path=str(SCREENSHOTS / "versions.png"))

            # ---- sign out: the console is closed again ----
            page.get_by_role("button", name="Sign out").click()
            expect(page).to_have_url(re.compile(r"/console/login$"))
            page.goto(f"{url}/console/")
            expect(page).to_have_url(re.compile(r"/console/login\?next="))
        finally:
            context.close()

    labelled = state.querylog.pairs(LABELLED_SOURCES)
    questions = {p["question"] for p in labelled}
    assert {"What causes scurvy?", "What does bread need?"} <= questions
    assert len(state.querylog.pairs(NOT_ANSWERABLE)) == 1
    assert not problems, problems
