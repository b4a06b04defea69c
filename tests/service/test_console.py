"""The web console (/console) and chat page (/chat): sessions, CSRF, and every action, through
a TestClient over the fake embedder."""

from __future__ import annotations

import dataclasses
import json
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


def test_sign_in_attempts_are_limited_per_client_address(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN)
    for _ in range(sessions.SIGN_IN_PER_MINUTE):
        assert sign_in(client, "a-guess").status_code == 401
    refused = sign_in(client)  # even the right token, once the address is over its limit
    assert refused.status_code == 429 and "too many sign-in attempts" in refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert sessions.COOKIE not in refused.cookies
    assert client.get("/console/", follow_redirects=False).status_code == 303
    # another address has its own attempts (the same app, already started)
    other = TestClient(client.app, client=("203.0.113.7", 40000))
    assert sign_in(other).status_code == 303
    assert other.get("/console/").status_code == 200


def _console_posts() -> list[str]:
    """Every console action's path (``POST``), with placeholder ids."""
    from ragloop.service.console import router

    paths = []
    routes = list(router.routes)
    while routes:
        route = routes.pop(0)
        included = getattr(route, "original_router", None)  # include_router (no prefixes here)
        if included is not None:
            routes.extend(included.routes)
            continue
        path = getattr(route, "path", "")
        if "POST" in getattr(route, "methods", set()) and path.startswith("/console/"):
            paths.append(re.sub(r"\{[^}]+\}", "x", path))
    return paths


def test_every_console_action_refuses_a_cross_site_post(console: TestClient) -> None:
    csrf = page_csrf(console)
    posts = _console_posts()
    assert {"/console/login", "/console/logout", "/console/jobs/retrain"} <= set(posts)
    assert len(posts) >= 10
    upload = {"files": ("x.md", b"# X\n\nx\n", "text/plain")}
    for path in posts:
        for header in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/"}):
            r = console.post(
                path, data={"csrf": csrf, "confirm": "x"}, files=upload, headers=header
            )
            assert r.status_code == 403, (path, header, r.status_code, r.text[:200])
    # nothing was done: still signed in, no key, no job
    state = console.app.state.rl  # type: ignore[attr-defined]
    assert console.get("/console/").status_code == 200
    assert state.keys.all() == [] and state.jobs.recent(None, 10) == []


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
    # the loss curve's frame, filled in by console.js from the polled messages
    assert 'id="loss-curve" role="img"' in page and 'id="loss-line"' in page
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


GATE = {
    "gate_set": "held-out pairs",
    "n_queries": 40,
    "primary": "ndcg@10",
    "current": {"ndcg@10": 0.61, "mrr@10": 0.55, "recall@100": 0.9, "ndcg@1": 0.5},
    "candidate": {"ndcg@10": 0.66, "mrr@10": 0.57, "recall@100": 0.88, "ndcg@1": 0.5},
    "delta": 0.05,
    "margin": 0.005,
    "promote": True,
    "reason": "ndcg@10 improved by +0.0500 (margin 0.005, 95% lower bound +0.0120)",
    "delta_lower_bound": 0.012,
    "min_questions": 30,
    "retrieval": "hybrid",
    "current_recipe": {"method": "rrf", "rrf_k": 60, "dense_weight": 0.5, "depth": 50},
    "candidate_recipe": {
        "method": "rrf",
        "rrf_k": 60,
        "dense_weight": 0.7,
        "depth": 50,
        "label": "rrf k60 w0.7",
    },
    "recipes": {"rrf k60 w0.5": 0.64, "rrf k60 w0.7": 0.66},
    "recipe_questions": 28,
    "forgetting": {"check": "neighbour agreement with the base model", "passed": True},
    "question_origins": {"feedback": 12, "heading": 28},
}


def _gated_version(console: TestClient, name: str = "ft-test", gate: Any = None) -> str:
    """A retrained version with a gate report and its job (as ``RetrainManager`` leaves them)."""
    state = console.app.state.rl  # type: ignore[attr-defined]
    catalog = state.runtime.catalog
    base = catalog.active_version()
    manifest = {"sources": {"labelled": 12, "synthetic": 300}, "train_pairs": 312}
    job = state.jobs.create("retrain", RetrainOptions().model_dump())
    state.jobs.update(job.id, state="promoted", result={"manifest": manifest, "version": name})
    model_dir = Path(state.settings.models_dir) / name
    model_dir.mkdir(parents=True)
    (model_dir / "training.json").write_text(
        json.dumps({"base": "all-MiniLM-L6-v2", "stats": {"steps": 20, "seconds": 31.5}})
    )
    catalog.add_version(
        dataclasses.replace(
            base,
            version=name,
            model_ref=str(model_dir),
            parent=base.version,
            status="retired",
            created_at=time.time(),
            info={"kind": "full", "job_id": job.id, "gate": GATE if gate is None else gate},
        )
    )
    return name


def test_a_version_report_shows_its_gate_beside_the_version_it_challenged(
    console: TestClient,
) -> None:
    version = _gated_version(console)
    listing = console.get("/console/versions").text
    assert f'href="/console/versions/{version}"' in listing
    r = console.get(f"/console/versions/{version}")
    assert r.status_code == 200
    html = r.text
    metrics = html.split('id="gate-metrics"')[1].split("</table>")[0]
    for name in GATE["current"]:  # every metric of the report, both scores
        assert f">{name}" in metrics
    # families in the report's order, each by cut-off
    assert metrics.index(">ndcg@1<") < metrics.index(">ndcg@10") < metrics.index(">mrr@10")
    assert metrics.index(">mrr@10") < metrics.index(">recall@100")
    assert "0.6100" in metrics and "0.6600" in metrics and "+0.0500 better" in metrics
    assert "-0.0200 worse" in metrics and "+0.0000 same" in metrics
    assert "does not store per-question scores" in html
    counts = html.split('id="question-counts"')[1].split("</ul>")[0]
    assert "40 questions judged (by origin: feedback 12, heading 28)" in counts
    assert "+0.0120" in counts
    recipes = html.split('id="gate-recipes"')[1].split("</table>")[0]
    assert "dense_weight" in recipes and "0.5" in recipes and "0.7" in recipes
    manifest = html.split('id="training-manifest"')[1].split("</table>")[0]
    assert "labelled: 12, synthetic: 300" in manifest and "312" in manifest
    assert "31.5" in html.split('id="training-run"')[1]
    assert "Promoted" in html and GATE["reason"] in html
    assert "Activate ft-test" in html  # retired: can be activated again
    base = console.get("/console/versions/base")
    assert base.status_code == 200 and "no gate report" in base.text
    unknown = console.get("/console/versions/nope")
    assert unknown.status_code == 404 and "nope" in unknown.text


def test_a_version_report_lists_per_question_wins_and_losses(console: TestClient) -> None:
    per_question = [
        {"question": f"gain {i}?", "current": 0.2, "candidate": 0.2 + 0.05 * i}
        for i in range(1, 14)
    ]
    per_question += [
        {"question": "lost <it>?", "current": 1.0, "candidate": 0.5},
        {"question": "lost a little?", "current": 0.6, "candidate": 0.5},
        {"question": "same?", "current": 0.4, "candidate": 0.4},
    ]
    version = _gated_version(console, "ft-pq", GATE | {"per_question": per_question})
    html = console.get(f"/console/versions/{version}").text
    summary = html.split('id="per-question"')[1].split("</p>")[0]
    assert "On 16 gate questions" in summary
    assert "won 13" in summary and "lost 2" in summary and "tied 1" in summary
    wins = html.split('id="question-wins"')[1].split("</table>")[0]
    assert "Largest wins (10 of 13)" in wins
    assert wins.index("gain 13?") < wins.index("gain 12?") and "gain 3?" not in wins
    assert "+0.6500 better" in wins
    losses = html.split('id="question-losses"')[1].split("</table>")[0]
    assert losses.index("lost &lt;it&gt;?") < losses.index("lost a little?")  # escaped
    assert "-0.5000 worse" in losses and "same?" not in losses
    assert "does not store per-question scores" not in html


def test_a_report_written_before_newer_gate_fields_still_shows() -> None:
    from ragloop.finetune.gate import GateResult
    from ragloop.service.console.loop import GATE_FIELDS

    assert set(GATE_FIELDS) == {f.name for f in dataclasses.fields(GateResult)}


def test_a_sparse_gate_report_renders(console: TestClient) -> None:
    version = _gated_version(
        console, "ft-old", {"promote": False, "reason": "too few", "n_queries": 3}
    )
    html = console.get(f"/console/versions/{version}").text
    assert "Refused" in html and "too few" in html and "no fusion recipe" in html


def test_overview_plots_the_gate_metric_across_versions(console: TestClient) -> None:
    empty = console.get("/console/").text
    assert 'id="no-gates"' in empty and 'id="metric-plot"' not in empty
    _gated_version(console, "ft-one")
    _gated_version(
        console,
        "ft-two",
        GATE | {"gate_set": "gate/test", "promote": False, "candidate": {"ndcg@10": 0.58}},
    )
    html = console.get("/console/").text
    plot = html.split('id="metric-plot"')[1].split("</svg>")[0]
    assert plot.index('data-version="ft-one"') < plot.index('data-version="ft-two"')
    assert "ft-one on held-out pairs: 0.6600, promoted" in plot
    assert "ft-two on gate/test: 0.5800, refused" in plot  # a named gate set: a diamond
    assert "<polyline" in plot and "<script" not in html.split("</head>")[1]


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
    chart = html.split('id="misses-chart"')[1].split("</svg>")[0]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert f"{today}: 1 negative_feedback" in chart
    assert f'data-day="{today}" data-total="' in chart
