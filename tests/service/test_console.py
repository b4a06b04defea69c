"""The web console (/console) and chat page (/chat): sessions, CSRF, and every action, through
a TestClient over the fake embedder."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragloop.core.storage.jobs import Job
from ragloop.core.storage.querylog import LABELLED_SOURCES
from ragloop.finetune.options import RetrainOptions
from ragloop.service.console import session as sessions
from ragloop.service.console.stats import NOT_ANSWERABLE
from tests.service.conftest import ClientFactory

TOKEN = "console-admin-token"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: TestClient, token: str = TOKEN) -> Any:
    page = client.get("/console/login")
    assert page.status_code == 200
    return client.post(
        "/console/login",
        data={"token": token, "csrf": csrf_of(page.text), "next": "/console/"},
        follow_redirects=False,
    )


@pytest.fixture
def console(make_client: ClientFactory) -> TestClient:
    client = make_client(admin_token=TOKEN)
    assert sign_in(client).status_code == 303
    return client


def page_csrf(client: TestClient, path: str = "/console/") -> str:
    return csrf_of(client.get(path).text)


def miss(client: TestClient, question: str) -> str:
    """A logged query made a miss by a dislike, as a user would."""
    out = client.post("/v1/query", json={"question": question, "k": 3}).json()
    r = client.post("/v1/feedback", json={"query_id": out["query_id"], "rating": "down"})
    assert r.status_code == 200, r.text
    return str(out["query_id"])


# ---- sign-in, sessions, CSRF -----------------------------------------------------------------


def test_pages_send_a_browser_without_a_session_to_sign_in(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN)
    for path in ("/console/", "/console/misses", "/console/jobs", "/console/keys"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
    r = client.get("/console/api/jobs/x")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    login = client.get("/console/login")
    assert 'type="password"' in login.text and 'for="token"' in login.text


def test_sign_in_sets_a_strict_httponly_expiring_cookie(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN)
    r = sign_in(client)
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    cookie = next(
        c for c in r.headers.get_list("set-cookie") if c.startswith(f"{sessions.COOKIE}=")
    )
    attrs = cookie.lower()
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/console" in attrs
    assert f"max-age={sessions.SESSION_TTL_S}" in attrs
    overview = client.get("/console/")
    assert overview.status_code == 200 and "Overview" in overview.text
    assert "frame-ancestors 'none'" in overview.headers["content-security-policy"]
    assert overview.headers["cache-control"] == "no-store"


def test_a_wrong_token_is_refused(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN)
    r = sign_in(client, "not-the-token")
    assert r.status_code == 401 and "wrong admin token" in r.text
    assert sessions.COOKIE not in r.cookies
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_without_an_admin_token_the_console_is_off(make_client: ClientFactory) -> None:
    client = make_client()
    assert "RAGLOOP_ADMIN_TOKEN" in client.get("/console/login").text
    form = {"token": "anything", "csrf": client.cookies.get(sessions.LOGIN_COOKIE)}
    assert client.post("/console/login", data=form).status_code == 403


def test_sign_in_needs_the_form_token_and_this_origin(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN)
    token = csrf_of(client.get("/console/login").text)
    r = client.post("/console/login", data={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post(
        "/console/login",
        data={"token": TOKEN, "csrf": token},
        headers={"Origin": "http://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403


def test_an_expired_or_tampered_session_is_refused(console: TestClient) -> None:
    state = console.app.state.rl  # type: ignore[attr-defined]
    secret = sessions.console_secret(state)
    payload = {
        "sub": "admin",
        "sid": "s1",
        "exp": time.time() - 1,
        "csrf": "x" * 32,
        "tok": sessions.token_fingerprint(secret, state),
    }
    console.cookies.clear()
    console.cookies.set(sessions.COOKIE, sessions.sign(secret, payload), path="/console")
    assert console.get("/console/", follow_redirects=False).status_code == 303
    payload["exp"] = time.time() + 60
    value = sessions.sign(secret, payload)
    console.cookies.set(sessions.COOKIE, value, path="/console")
    assert console.get("/console/").status_code == 200  # a well-signed live one works
    console.cookies.set(sessions.COOKIE, value[:-2] + "AA", path="/console")
    assert console.get("/console/", follow_redirects=False).status_code == 303
    payload["tok"] = "0" * 32  # made with another admin token
    console.cookies.set(sessions.COOKIE, sessions.sign(secret, payload), path="/console")
    assert console.get("/console/", follow_redirects=False).status_code == 303


def test_actions_need_the_csrf_token_and_this_origin(console: TestClient) -> None:
    qid = miss(console, "What did sailors get on long voyages?")
    chunk = console.post("/v1/query", json={"question": "scurvy"}).json()["sources"][0]
    url = f"/console/misses/{qid}/label"
    body = {"chunk_ids": chunk["chunk_id"]}
    assert console.post(url, data=body).status_code == 403
    assert console.post(url, data=body | {"csrf": "wrong"}).status_code == 403
    good = page_csrf(console)
    evil = console.post(url, data=body | {"csrf": good}, headers={"Origin": "http://evil.ex"})
    assert evil.status_code == 403 and "cross-site" in evil.json()["error"]["message"]
    referer = console.post(
        url, data=body | {"csrf": good}, headers={"Referer": "http://evil.ex/page"}
    )
    assert referer.status_code == 403
    assert console.get(url).status_code == 405  # actions are POST only
    ok = console.post(
        url,
        data=body | {"csrf": good},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert ok.status_code == 303


def test_sign_out_ends_the_session_on_the_server_too(console: TestClient) -> None:
    old = console.cookies.get(sessions.COOKIE)
    assert old
    r = console.post("/console/logout", data={"csrf": page_csrf(console)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert console.get("/console/", follow_redirects=False).status_code == 303
    console.cookies.set(sessions.COOKIE, old, path="/console")  # a copied cookie is dead too
    assert console.get("/console/", follow_redirects=False).status_code == 303


# ---- misses inbox ----------------------------------------------------------------------------


def test_inbox_lists_misses_newest_first_with_filters(console: TestClient) -> None:
    first = miss(console, "Which whale lives near the coral reef?")
    second = miss(console, "How hot is volcano lava?")
    html = console.get("/console/misses").text
    assert html.index("How hot is volcano lava?") < html.index("Which whale lives near")
    assert f'data-id="{second}"' in html and "Answer given" in html
    assert console.get("/console/misses?reason=low_score&id=" + first).status_code == 200
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert "volcano" in console.get(f"/console/misses?since={today}&until={today}").text
    assert (
        "volcano"
        not in console.get("/console/misses?until=2001-01-01")
        .text.split('class="misslist"')[1]
        .split("</ol>")[0]
    )
    bad = console.get("/console/misses?since=yesterday")
    assert bad.status_code == 400 and "must be a date" in bad.text
    bad = console.get("/console/misses?reason=bogus")
    assert "unknown miss reason" in bad.text


def test_search_then_label_stores_a_pair_as_feedback_does(console: TestClient) -> None:
    qid = miss(console, "Which fruit do sailors need?")
    fragment = console.get(f"/console/misses/{qid}/search", params={"q": "scurvy citrus"})
    assert fragment.status_code == 200 and 'id="mark-1"' in fragment.text
    chunk_id = re.search(r'name="chunk_ids" value="([^"]+)" id="mark-1"', fragment.text)
    assert chunk_id
    r = console.post(
        f"/console/misses/{qid}/label",
        data={"chunk_ids": chunk_id.group(1), "csrf": page_csrf(console), "next": "/console/x"},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["labelled_chunk_ids"] == [chunk_id.group(1)] and out["next"] == "/console/x"
    state = console.app.state.rl  # type: ignore[attr-defined]
    pairs = state.querylog.pairs(LABELLED_SOURCES)
    assert [(p["query_id"], p["chunk_id"], p["source"]) for p in pairs] == [
        (qid, chunk_id.group(1), "feedback")
    ]
    assert "labelled" in console.get(f"/console/misses?id={qid}").text
    empty = console.post(
        f"/console/misses/{qid}/label",
        data={"csrf": page_csrf(console)},
        headers={"Accept": "application/json"},
    )
    assert empty.status_code == 400


def test_not_answerable_is_counted_and_kept_out_of_training(console: TestClient) -> None:
    qid = miss(console, "Who won the football cup?")
    r = console.post(
        f"/console/misses/{qid}/not-answerable",
        data={"csrf": page_csrf(console)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    state = console.app.state.rl  # type: ignore[attr-defined]
    assert state.querylog.pairs(LABELLED_SOURCES) == []  # nothing to train on
    marks = state.querylog.pairs(NOT_ANSWERABLE)
    assert [m["query_id"] for m in marks] == [qid]
    # pseudo-labelling skips every query that has a pair of any source
    assert qid in {p["query_id"] for p in state.querylog.pairs()}
    html = console.get("/console/").text
    assert re.search(r'id="n-not-answerable">1<', html)
    assert re.search(r'id="n-unlabelled">0<', html)


# ---- jobs and versions -----------------------------------------------------------------------


def test_retrain_form_is_validated_like_the_admin_route(console: TestClient) -> None:
    csrf = page_csrf(console, "/console/jobs")
    r = console.post("/console/jobs/retrain", data={"csrf": csrf, "epochs": "0"})
    assert r.status_code == 400 and "epochs" in r.text
    r = console.post(
        "/console/jobs/retrain",
        data={"csrf": csrf, "sources": "labelled", "loss": "nope"},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 400 and "loss" in r.json()["error"]["message"]
    r = console.post(
        "/console/jobs/retrain",
        data={"csrf": csrf, "options_json": "[1]"},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 400


def test_start_poll_and_cancel_a_retrain(
    console: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = console.app.state.rl  # type: ignore[attr-defined]
    started: list[RetrainOptions] = []

    def start(options: RetrainOptions, wait: bool = False) -> Job:
        started.append(options)
        return state.jobs.create("retrain", options.model_dump())

    monkeypatch.setattr(state.retrain, "start", start)
    csrf = page_csrf(console, "/console/jobs")
    r = console.post(
        "/console/jobs/retrain",
        data={
            "csrf": csrf,
            "sources": ["labelled", "synthetic"],
            "loss": "mnrl",
            "epochs": "0.5",
            "min_gate_questions": "5",
            "lora": "on",
            "options_json": '{"tune_recipe": false}',
        },
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    job = r.json()
    [options] = started
    assert options.sources == ["labelled", "synthetic"] and options.epochs == 0.5
    assert options.lora and not options.query_only and not options.tune_recipe
    assert options.min_gate_questions == 5
    state.jobs.update(job["id"], state="running", progress=0.4, message="training")
    polled = console.get(f"/console/api/jobs/{job['id']}").json()
    assert polled["state"] == "running" and polled["progress"] == 0.4
    page = console.get(f"/console/jobs?job={job['id']}").text
    assert 'id="job-progress"' in page and "training" in page
    cancelled = console.post(
        f"/console/jobs/{job['id']}/cancel",
        data={"csrf": csrf},
        headers={"Accept": "application/json"},
    )
    assert cancelled.json()["state"] == "cancelling"


def test_a_failed_job_shows_its_log_tail(console: TestClient) -> None:
    state = console.app.state.rl  # type: ignore[attr-defined]
    job = state.jobs.create("retrain", {})
    folder = Path(state.settings.data_dir) / "jobs" / job.id
    folder.mkdir(parents=True)
    (folder / "worker.log").write_text("step 1\nTraceback: MemoryError\n")
    state.jobs.update(job.id, state="failed", message="training worker exited with 1")
    polled = console.get(f"/console/api/jobs/{job.id}").json()
    assert "MemoryError" in polled["log_tail"]
    assert "MemoryError" in console.get(f"/console/jobs?job={job.id}").text


def test_versions_list_and_activate_with_confirmation(console: TestClient) -> None:
    html = console.get("/console/versions").text
    state = console.app.state.rl  # type: ignore[attr-defined]
    active = state.runtime.catalog.active_version().version
    assert active in html and "serving" in html
    confirm = console.get(f"/console/versions/{active}/activate")
    assert confirm.status_code == 200 and 'name="confirm"' in confirm.text
    csrf = csrf_of(confirm.text)
    unconfirmed = console.post(
        f"/console/versions/{active}/activate",
        data={"csrf": csrf},
        headers={"Accept": "application/json"},
    )
    assert unconfirmed.status_code == 400
    unknown = console.post(
        "/console/versions/nope/activate",
        data={"csrf": csrf, "confirm": "nope"},
        follow_redirects=False,
    )
    assert unknown.status_code == 404 and "nope" in unknown.text
    ok = console.post(
        f"/console/versions/{active}/activate",
        data={"csrf": csrf, "confirm": active},
        headers={"Accept": "application/json"},
    )
    assert ok.status_code == 200 and ok.json() == {"active": active}


# ---- documents, keys, chat, schema -----------------------------------------------------------


def test_upload_and_delete_documents(console: TestClient) -> None:
    csrf = page_csrf(console, "/console/documents")
    r = console.post(
        "/console/documents/upload",
        data={"csrf": csrf},
        files={"files": ("bread.md", b"# Bread\n\nBread needs flour and yeast.\n", "text/plain")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "/console/documents?job=" in r.headers["location"]
    job_id = r.headers["location"].split("job=")[1]
    state = console.app.state.rl  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while not state.jobs.get(job_id).done and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state.jobs.get(job_id).state == "succeeded"
    docs = {d.title: d for d in state.runtime.catalog.list_documents(limit=100)}
    assert "Bread" in docs and "Bread" in console.get("/console/documents").text
    forged = console.post(
        "/console/documents/upload",
        files={"files": ("x.md", b"# X\n\nx\n", "text/plain")},
    )
    assert forged.status_code == 403
    r = console.post(
        f"/console/documents/{docs['Bread'].id}/delete",
        data={"csrf": csrf},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200 and r.json()["deleted"]
    assert state.runtime.catalog.get_document(docs["Bread"].id) is None


def test_keys_are_shown_once_and_revoked(console: TestClient) -> None:
    csrf = page_csrf(console, "/console/keys")
    r = console.post("/console/keys/create", data={"csrf": csrf, "name": "widget"})
    assert r.status_code == 201
    plaintext = re.search(r'id="new-key" readonly value="([^"]+)"', r.text)
    assert plaintext and plaintext.group(1).startswith("rl_")
    listing = console.get("/console/keys").text
    assert "widget" in listing and plaintext.group(1) not in listing
    headers = {"X-API-Key": plaintext.group(1)}
    assert console.post("/v1/query", json={"question": "scurvy"}, headers=headers).is_success
    state = console.app.state.rl  # type: ignore[attr-defined]
    [key] = state.keys.all()
    r = console.post(f"/console/keys/{key.id}/revoke", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert (
        console.post("/v1/query", json={"question": "scurvy"}, headers=headers).status_code == 401
    )
    assert console.post("/console/keys/create", data={"csrf": csrf, "name": ""}).status_code == 400


def test_chat_page_is_open_and_console_routes_stay_out_of_the_schema(
    make_client: ClientFactory,
) -> None:
    client = make_client(admin_token=TOKEN)
    chat = client.get("/chat")
    assert chat.status_code == 200 and 'for="question"' in chat.text
    assert 'id="api-key"' not in chat.text  # no key in use: none asked for
    assert client.get("/console/static/chat.js").status_code == 200
    assert client.get("/console/static/console.css").headers["content-type"].startswith("text/css")
    assert client.get("/console/static/..%2Fsession.py").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/console", "/chat"))]
    assert "/v1/feedback" in paths


def test_overview_counts(console: TestClient) -> None:
    miss(console, "What is magma made of?")
    html = console.get("/console/").text
    state = console.app.state.rl  # type: ignore[attr-defined]
    counts = state.runtime.catalog.counts()
    assert re.search(rf'id="n-documents">{counts["documents"]}<', html)
    assert re.search(rf'id="n-chunks">{counts["chunks"]}<', html)
    assert re.search(r'id="n-misses">1<', html) and re.search(r'id="n-unlabelled">1<', html)
    assert "negative_feedback" in html
