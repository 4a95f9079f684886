"""The neuron explorer in a real headless Chromium (Playwright, the system's chromium) against the
app served by uvicorn on a free loopback port: sliders change the steered list, the diff highlights
equal what the API's own unsteered and steered answers imply, the neuron search filters, the tree
opens a branch, A/B arm previews show each arm's list, 4xx answers are displayed, and the page logs
no console errors. The JavaScript diff and spec grammar are also unit-tested in the browser, the
grammar against the service's own parser. Screenshots go to the pytest temporary directory (the path
is printed); with STEERREC_UPDATE_SCREENSHOT=1 the README's docs/img/explorer.png is rewritten too."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from steerrec.service.app import SteerService, create_app
from steerrec.service.engine import SteeringEngine
from steerrec.service.experiments import ExperimentSet
from steerrec.service.ingress import free_port
from steerrec.service.metrics import PrometheusMetrics
from steerrec.bundle import NEURONS, BundleWriter
from steerrec.service.steering import (
    SpecError,
    parse_filter,
    parse_promote,
    parse_steer,
)

from ._explorer_helpers import (
    CHROMIUM_ARGS,
    ConsoleLog,
    ServerThread,
    explorer_bundles,
    require_browser,
)
from ._steer_helpers import REPO

TIMEOUT_MS = 20_000
README_SCREENSHOT = REPO / "docs" / "img" / "explorer.png"


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def playwright_env():
    return require_browser()


@pytest.fixture(scope="module")
def engine(playwright_env):
    return SteeringEngine(explorer_bundles().interpreted)


@pytest.fixture(scope="module")
def slugs(engine):
    """Two genre neurons to steer and filter by slug (the interpretation names them by genre)."""
    have = engine.catalog.slug_to_id
    picked = [s for s in ("horror", "comedy", "drama", "action") if s in have]
    if len(picked) < 2:
        pytest.skip("the bundle has fewer than two genre slugs")
    return picked[0], picked[1]


@pytest.fixture(scope="module")
def experiments(slugs):
    steer, other = slugs
    return ExperimentSet.from_dict({"experiments": [{
        "name": "genre-boost", "salt": "explorer-test", "traffic": 1.0,
        "arms": [{"name": "control", "weight": 2}, {"name": "more", "weight": 1, "steer": [f"{steer}:+3"]},
                 {"name": "swap", "weight": 1, "steer": [f"{other}:+2"], "filter": [steer]}]}]})


@pytest.fixture(scope="module")
def server(engine, experiments):
    app = create_app(SteerService(engine, experiments, metrics=PrometheusMetrics()))
    srv = ServerThread(app, free_port()).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser(playwright_env):
    sync_api, chromium = playwright_env
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def tab(browser):
    """A fresh page with its console watched; ``tab.page``, ``tab.console``."""
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    class Tab:
        pass

    t = Tab()
    t.page, t.console = page, ConsoleLog().attach(page)
    yield t
    context.close()


@pytest.fixture(scope="module")
def user(engine):
    return engine.user_ids[1]


# -- helpers -----------------------------------------------------------------------------------------
def open_page(tab, server, **query) -> None:
    """Opens the explorer with the given URL state; multi-valued params as lists."""
    tab.page.goto(f"{server.url}/explorer/?{urlencode(query, doseq=True)}")


def wait_results(page, **expected) -> dict:
    """Waits until the lists are rendered (not loading) for a request whose steer/filter/promote lists
    equal ``expected`` (missing kinds: none); returns the parameters of that request."""
    want = {kind: list(expected.get(kind, [])) for kind in ("steer", "filter", "promote")}
    page.wait_for_function("""want => {
        const r = document.getElementById('results');
        if (r.dataset.status !== 'ready' && r.dataset.status !== 'error') return false;
        const p = new URLSearchParams(r.dataset.rendered || '');
        return ['steer', 'filter', 'promote'].every(k => JSON.stringify(p.getAll(k)) === JSON.stringify(want[k]));
    }""", arg=want)
    rendered = page.get_attribute("#results", "data-rendered")
    return parse_qs(rendered, keep_blank_values=True)


def dom_list(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(selector, """els => els.map(e => ({
        id: e.dataset.id, change: e.dataset.change || null, delta: e.dataset.delta ?? null,
        classes: [...e.classList], title: e.querySelector('.item-title').textContent}))""")


def api_ids(api, params: dict) -> list[dict]:
    r = api.get("/recommend", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def expected_diff(before: list[str], after: list[str]) -> tuple[list[tuple], list[tuple]]:
    """Independent of diff.js: (id, change, delta) for the steered and the unsteered list."""
    previous = {item: rank for rank, item in enumerate(before, start=1)}
    steered = []
    for rank, item in enumerate(after, start=1):
        if item not in previous:
            steered.append((item, "new", None))
        else:
            delta = previous[item] - rank
            steered.append((item, "up" if delta > 0 else "down" if delta < 0 else "same", str(delta)))
    present = set(after)
    return steered, [(item, "kept" if item in present else "removed", None) for item in before]


def assert_highlights_match_api(page, api, rendered: dict) -> tuple[list[str], list[str]]:
    """The DOM's two lists and their highlight classes against the API's answers for exactly the
    request the page rendered; returns (unsteered ids, steered ids)."""
    params = {k: v if k in ("steer", "filter", "promote") else v[0] for k, v in rendered.items()}
    assert params["ab"] == "off"
    base = {k: v for k, v in params.items() if k not in ("steer", "filter", "promote")}
    before, after = api_ids(api, base), api_ids(api, params)
    steered_dom, unsteered_dom = dom_list(page, "#steered li"), dom_list(page, "#unsteered li")
    assert [(d["id"], d["title"]) for d in unsteered_dom] == [(i["id"], i["title"]) for i in before]
    assert [(d["id"], d["title"]) for d in steered_dom] == [(i["id"], i["title"]) for i in after]
    want_steered, want_unsteered = expected_diff([i["id"] for i in before], [i["id"] for i in after])
    assert [(d["id"], d["change"], d["delta"]) for d in steered_dom] == want_steered
    assert [(d["id"], d["change"], d["delta"]) for d in unsteered_dom] == want_unsteered
    for d in steered_dom + unsteered_dom:
        assert f"change-{d['change']}" in d["classes"]
    return [i["id"] for i in before], [i["id"] for i in after]


def assert_no_console_errors(tab) -> None:
    assert tab.console.all() == []


# -- steering ------------------------------------------------------------------------------------------
def test_slider_changes_the_steered_list_and_highlights_match_the_api(tab, server, api, user, slugs):
    page, steer_slug = tab.page, slugs[0]
    open_page(tab, server, user=user)
    rendered = wait_results(page)
    before, after = assert_highlights_match_api(page, api, rendered)
    assert before == after  # no interventions: both lists are the base ranking

    page.fill("#add-neuron", steer_slug)
    page.click("#add-form button[value=steer]")
    slider = page.locator(f"#interventions li[data-kind=steer][data-target={steer_slug}] input[type=range]")
    assert slider.input_value() == "2"
    rendered = wait_results(page, steer=[f"{steer_slug}:+2"])
    _, steered_at_2 = assert_highlights_match_api(page, api, rendered)

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/recommend?" in r.url and "steer=" in r.url else None)
    slider.focus()
    for _ in range(8):  # keyboard moves, faster than the debounce: one request, not eight
        page.keyboard.press("ArrowRight")
    assert slider.input_value() == "6"
    rendered = wait_results(page, steer=[f"{steer_slug}:+6"])
    assert len(requests) < 4, requests
    slider.press("End")
    rendered = wait_results(page, steer=[f"{steer_slug}:+10"])
    _, steered_at_10 = assert_highlights_match_api(page, api, rendered)
    assert steered_at_10 != steered_at_2, "moving the slider did not change the steered list"
    assert parse_qs(page.url.split("?", 1)[1])["steer"] == [f"{steer_slug}:+10"]
    assert page.inner_text("#interventions li[data-kind=steer] output") == "+10"
    echo = api.get("/recommend", params={**{k: v[0] for k, v in rendered.items() if k != "steer"},
                                         "steer": rendered["steer"]}).json()["steers"][0]
    assert page.inner_text("#interventions li[data-kind=steer] .iv-echo") == \
        f"activation {echo['activation_before']:.2f} → {echo['activation_after']:.2f}"

    # the operation select: set the neuron's activation instead of adding to it
    page.select_option("#interventions li[data-kind=steer] select", "=")
    rendered = wait_results(page, steer=[f"{steer_slug}:=0"])
    assert_highlights_match_api(page, api, rendered)
    assert_no_console_errors(tab)


def test_filter_and_promote_controls(tab, server, api, user, slugs, engine):
    page, (steer_slug, other) = tab.page, slugs
    open_page(tab, server, user=user, k=20, steer=f"{other}:+1", neuron=steer_slug)
    wait_results(page, steer=[f"{other}:+1"])
    assert page.input_value("#k") == "20"
    page.click("#neuron-detail button:has-text('Filter it out')")
    rendered = wait_results(page, steer=[f"{other}:+1"], filter=[steer_slug])
    _, after = assert_highlights_match_api(page, api, rendered)
    # nothing left in the list fires on the filtered neuron
    rows, _ = engine.catalog.items_by_neuron.row(engine.catalog.slug_to_id[steer_slug])
    assert not set(after) & {engine.item_ids[r] for r in rows}
    echo = api.get("/recommend", params={"user": user, "filter": steer_slug}).json()["filters"][0]
    assert page.inner_text("#interventions li[data-kind=filter] .iv-echo") == (
        f"removes {echo['items_removed']} items ({echo['concept_items_removed']} of the {echo['concept_items']} "
        f"labelled {echo['label']})")

    threshold = page.locator("#interventions li[data-kind=filter] input[type=number]")
    threshold.fill("2")
    rendered = wait_results(page, steer=[f"{other}:+1"], filter=[f"{steer_slug}:>2"])
    assert_highlights_match_api(page, api, rendered)

    page.fill("#add-neuron", other)
    page.click("#add-form button[value=promote]")
    promote = page.locator("#interventions li[data-kind=promote] input[type=range]")
    promote.focus()
    page.keyboard.press("ArrowRight")  # +2 -> +2.5
    rendered = wait_results(page, steer=[f"{other}:+1"], filter=[f"{steer_slug}:>2"], promote=[f"{other}:+2.5"])
    assert_highlights_match_api(page, api, rendered)

    page.click("#interventions li[data-kind=filter] button.remove")
    rendered = wait_results(page, steer=[f"{other}:+1"], promote=[f"{other}:+2.5"])
    assert_highlights_match_api(page, api, rendered)
    assert "filter=" not in page.url
    assert_no_console_errors(tab)


def test_url_state_is_restored_and_shareable(tab, server, api, user, slugs):
    page, (a, b) = tab.page, slugs
    open_page(tab, server, user=user, k=5, exclude_seen="false", steer=[f"{a}:-1.5", f"{b}:*2"],
              promote=f"{b}:+3", view="tree", neuron=b)
    rendered = wait_results(page, steer=[f"{a}:-1.5", f"{b}:*2"], promote=[f"{b}:+3"])
    assert rendered["k"] == ["5"] and rendered["exclude_seen"] == ["false"]
    assert_highlights_match_api(page, api, rendered)
    assert page.input_value("#user") == user and not page.is_checked("#exclude-seen")
    sliders = page.locator("#interventions input[type=range]")
    assert [sliders.nth(i).input_value() for i in range(sliders.count())] == ["-1.5", "2", "3"]
    assert page.get_attribute("#tab-tree", "aria-selected") == "true" and page.is_visible("#tree")
    page.wait_for_selector("#neuron-detail h3")
    assert page.inner_text("#neuron-detail h3") == api.get(f"/neurons/{b}").json()["label"]
    shared = page.url
    page.goto("about:blank")
    page.goto(shared)  # the same link shows the same state
    assert wait_results(page, steer=[f"{a}:-1.5", f"{b}:*2"], promote=[f"{b}:+3"]) == rendered
    assert_no_console_errors(tab)


# -- browsing ------------------------------------------------------------------------------------------
def test_neuron_search_filters_and_shows_details(tab, server, api, slugs):
    page, slug = tab.page, slugs[0]
    page.goto(f"{server.url}/")  # / redirects to the page
    assert page.url == f"{server.url}/explorer/"
    page.wait_for_selector("#neuron-list .neuron-row")
    everything = api.get("/neurons", params={"limit": 50}).json()
    assert page.locator("#neuron-list .neuron-row").count() == 50
    assert page.inner_text("#neuron-count") == f"{everything['total']} neurons"
    assert "users" in page.inner_text("#bundle-info")

    page.fill("#neuron-search", slug)
    expected = api.get("/neurons", params={"q": slug, "limit": 50}).json()
    page.wait_for_function("n => document.getElementById('neuron-count').textContent.startsWith(n + ' neuron')",
                           arg=str(expected["total"]))
    shown = page.eval_on_selector_all("#neuron-list .neuron-row", "els => els.map(e => Number(e.dataset.neuron))")
    assert shown == [n["id"] for n in expected["neurons"]] and 0 < len(shown) < everything["total"]
    labels = page.eval_on_selector_all("#neuron-list .neuron-label", "els => els.map(e => e.textContent)")
    assert labels == [n["label"] for n in expected["neurons"]]
    assert parse_qs(page.url.split("?", 1)[1])["q"] == [slug]

    page.click("#neuron-list .neuron-row >> nth=0")
    detail = api.get(f"/neurons/{expected['neurons'][0]['id']}").json()
    page.wait_for_function("label => document.querySelector('#neuron-detail h3')?.textContent === label",
                           arg=detail["label"])
    assert page.locator("#neuron-detail .bar-row").count() == len(detail["concepts"])
    widths = page.eval_on_selector_all("#neuron-detail .bar-fill", "els => els.map(e => e.style.width)")
    assert widths == [f"{round(c['share'] * 1000) / 10:g}%" for c in detail["concepts"]]
    assert page.eval_on_selector_all("#neuron-detail .top-items .item-title", "els => els.map(e => e.textContent)") \
        == [t["title"] for t in detail["top_items"]]
    assert page.get_attribute("#neuron-list .neuron-row >> nth=0", "aria-pressed") == "true"
    assert page.evaluate("document.activeElement.id") == "detail-h"  # focus moves to the details

    page.fill("#neuron-search", "no-such-concept-xyz")
    page.wait_for_function("() => document.getElementById('neuron-count').textContent.startsWith('0 neurons')")
    assert page.locator("#neuron-list li").count() == 0
    assert_no_console_errors(tab)


def test_an_anchored_neuron_says_so_in_its_details(tab, tmp_path):
    # A copy of the interpreted bundle whose neuron 0 carries the mark an anchored SAE's
    # interpretation writes (training/interpret/pipeline.py); neuron 1 does not.
    bundle = tmp_path / "anchored"
    shutil.copytree(explorer_bundles().interpreted, bundle)
    records = json.loads((bundle / NEURONS).read_text())
    records[0]["anchor"] = {"facet": "genre", "name": "Horror"}
    writer = BundleWriter.open(bundle)
    writer.add_json(NEURONS, records)
    writer.commit()
    app = create_app(SteerService(SteeringEngine(bundle), None, metrics=PrometheusMetrics()))
    srv = ServerThread(app, free_port()).start()
    try:
        page = tab.page
        for neuron, shown in ((0, "genre = Horror"), (1, None)):
            page.goto(f"{srv.url}/explorer/?neuron={neuron}")
            page.wait_for_selector("#neuron-detail h3")
            terms = page.eval_on_selector_all("#neuron-detail dt", "els => els.map(e => e.textContent)")
            if shown is None:
                assert "anchored to" not in terms
            else:
                values = page.eval_on_selector_all("#neuron-detail dd", "els => els.map(e => e.textContent)")
                assert values[terms.index("anchored to")] == shown
    finally:
        srv.stop()
    assert_no_console_errors(tab)


def test_concept_tree_opens_a_branch_with_the_keyboard(tab, server, api):
    page = tab.page
    tree = api.get("/concepts/tree").json()
    nodes = {n["id"]: n for n in tree["nodes"]}
    branches = [nodes[r] for r in tree["roots"] if nodes[r]["children"]]
    if not branches:
        pytest.skip(f"the concept tree ({tree['source']}) has no branch")
    root = branches[0]
    open_page(tab, server)
    page.focus("#tab-neurons")
    page.keyboard.press("ArrowRight")  # ARIA tabs: arrows move between tabs
    assert page.get_attribute("#tab-tree", "aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "tab-tree"
    assert "view=tree" in page.url
    toggle = page.locator(f"#tree li[data-neuron='{root['id']}'] > button.toggle")
    toggle.wait_for()
    assert page.locator("#tree ul.tree-roots > li").count() == len(tree["roots"])
    assert toggle.get_attribute("aria-expanded") == "false"
    branch = page.locator(f"#{toggle.get_attribute('aria-controls')}")
    assert branch.is_hidden()
    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "true" and branch.is_visible()
    children = branch.evaluate("ul => [...ul.children].map(li => Number(li.dataset.neuron))")
    assert children == root["children"]
    child = nodes[root["children"][0]]
    branch.locator(f"li[data-neuron='{child['id']}'] > .node-label").click()
    page.wait_for_function("label => document.querySelector('#neuron-detail h3')?.textContent === label",
                           arg=api.get(f"/neurons/{child['id']}").json()["label"])
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "false" and branch.is_hidden()
    assert_no_console_errors(tab)


# -- A/B -------------------------------------------------------------------------------------------
def test_ab_arm_previews_show_each_arms_list(tab, server, api, engine, experiments):
    page = tab.page
    user = next(u for u in engine.user_ids if experiments.assign(u).arm != "control")
    open_page(tab, server, user=user, k=10)
    page.wait_for_function("() => document.getElementById('ab').dataset.status === 'ready' && "
                           "document.querySelectorAll('#ab-arms .arm').length === 3")
    listing = api.get("/experiments", params={"user": user}).json()
    arms = listing["experiments"][0]["arms"]
    control_ids = [i["id"] for i in api_ids(api, {"user": user, "k": 10, "ab": "genre-boost:control"})]
    for arm in arms:
        section = page.locator(f"#ab-arms .arm[data-arm='{arm['name']}']")
        shown = section.evaluate("s => [...s.querySelectorAll('ol li')].map(li => [li.dataset.id, li.dataset.change || null])")
        want = [i["id"] for i in api_ids(api, {"user": user, "k": 10, "ab": arm["override"]})]
        assert [s[0] for s in shown] == want, arm["name"]
        if arm["control"]:
            assert all(s[1] is None for s in shown)
        else:
            assert [tuple(s) for s in shown] == [(i, c) for i, c, _ in expected_diff(control_ids, want)[0]]
        own = "this user’s arm" in section.inner_text()
        assert own == (arm["name"] == listing["assignment"]["arm"])
    assert page.inner_text("#ab-info") == f"By hash, {user} is in genre-boost, arm {listing['assignment']['arm']}."
    assert_no_console_errors(tab)


def test_no_experiments_says_so(browser, engine, playwright_env):
    srv = ServerThread(create_app(SteerService(engine, metrics=PrometheusMetrics())), free_port()).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        console = ConsoleLog().attach(page)
        page.goto(f"{srv.url}/explorer/?user={engine.user_ids[0]}")
        page.wait_for_function("() => document.getElementById('ab').dataset.status === 'ready'")
        assert "runs no A/B experiments" in page.inner_text("#ab-info")
        assert page.is_hidden("#ab-controls")
        wait_results(page)
        assert console.all() == []
    finally:
        context.close()
        srv.stop()


# -- errors ----------------------------------------------------------------------------------------
def test_api_errors_are_displayed(tab, server, api, user, slugs):
    page = tab.page
    open_page(tab, server, user=user, steer=f"{slugs[0]}:+99")  # over max_magnitude (50)
    wait_results(page, steer=[f"{slugs[0]}:+99"])
    body = api.get("/recommend", params={"user": user, "steer": f"{slugs[0]}:+99", "ab": "off"}).json()
    error = page.inner_text("#steer-error")
    assert page.is_visible("#steer-error") and page.get_attribute("#steer-error", "role") == "alert"
    assert "HTTP 422 · invalid_parameter" in error and body["problem"] in error and body["allowed"] in error
    assert page.locator("#interventions li.iv.invalid").count() == 1
    assert page.locator("#steered li").count() == 0
    assert page.get_attribute("#results", "data-status") == "error"

    def unsteered_answers_last(route):
        time.sleep(0.5)  # the steered request's 422 (bad steer) comes back first
        route.continue_()

    # A pattern (not a Python predicate), matched in the browser's driver: the steered request is
    # not intercepted, so the handler's sleep does not hold it back.
    page.route(re.compile(r"/recommend\?(?!.*steer=).*nobody-here"), unsteered_answers_last)
    page.fill("#user", "nobody-here")
    page.press("#user", "Enter")  # both the user and the steer are bad: the user's 404 is the one shown
    page.wait_for_function("() => document.getElementById('results').dataset.status === 'error'"
                           " && document.getElementById('results').dataset.rendered.includes('nobody-here')")
    assert "HTTP 404 · unknown_user" in page.inner_text("#steer-error")
    assert "nobody-here" in page.inner_text("#steer-error")
    assert page.locator("#unsteered li").count() == 0

    page.fill("#add-neuron", "no-such-neuron")
    page.click("#add-form button[value=steer]")
    page.wait_for_function("() => document.getElementById('steer-error').textContent.includes('unknown_neuron')")

    page.goto(f"{server.url}/explorer/?steer=bad-spec&k=1000")
    assert "Parts of the link were ignored" in page.inner_text("#page-error")
    assert "steer=bad-spec ignored" in page.inner_text("#page-error")
    assert tab.console.errors == []  # uncaught exceptions or console.error calls: none
    # what Chromium itself logs for each 4xx answer, and nothing else
    assert tab.console.failed_resources and all("status of 4" in m for m in tab.console.failed_resources)


# -- JavaScript units, run in the browser ----------------------------------------------------------------
def load_module(tab, server, name):
    tab.page.goto(f"{server.url}/explorer/")
    return f"import(new URL('js/{name}', document.baseURI).href)"


def test_diff_logic(tab, server):
    imp = load_module(tab, server, "diff.js")
    result = tab.page.evaluate(f"""async () => {{
        const m = await {imp};
        const L = ids => ids.map(id => ({{id, title: id, score: 0}}));
        const d = m.diffRankings(L(['a', 'b', 'c', 'd', 'e']), L(['c', 'a', 'x', 'b', 'y']));
        return {{steered: d.steered.map(i => [i.id, i.change, i.delta, i.previousRank, i.rank]),
                 unsteered: d.unsteered.map(i => [i.id, i.change]), counts: d.counts,
                 summary: m.summarize(d.counts), empty: m.summarize(m.diffRankings([], []).counts),
                 badges: d.steered.map(i => m.describeChange(i).badge)}};
    }}""")
    assert result["steered"] == [["c", "up", 2, 3, 1], ["a", "down", -1, 1, 2], ["x", "new", None, None, 3],
                                 ["b", "down", -2, 2, 4], ["y", "new", None, None, 5]]
    assert result["unsteered"] == [["a", "kept"], ["b", "kept"], ["c", "kept"], ["d", "removed"], ["e", "removed"]]
    assert result["counts"] == {"up": 1, "down": 2, "same": 0, "new": 2, "removed": 2}
    assert result["summary"] == "1 up, 2 down, 2 new, 2 removed" and result["empty"] == "no change"
    assert result["badges"] == ["▲2", "▼1", "new", "▼2", "new"]
    assert_no_console_errors(tab)


STEERS = ["horror:+3", "horror: 3", "horror:-1.5", "horror:=0", "horror:=-2", "horror:*0.5", "horror:*-1",
          "12:+.5", " horror :+3 ", "horror:+1e1", "horror:3", "horror:+-3", "horror: -3", "horror", "horror:+",
          "-x:+1", "horror:=+2", "horror:**2"]
FILTERS = ["comedy", "comedy:>0.5", " comedy : > 2 ", "comedy:>", "comedy:<1", "comedy:>-1", "7"]
PROMOTES = ["animation:+2", "animation:-1", "i12@animation:+2", "i 12 @ animation: 2", "animation:=2", "animation",
            "@animation:+1", "animation:+-1"]


def _python_meaning(kind: str, text: str):
    resolve = lambda target: 0  # any target resolves: only the grammar is compared
    try:
        if kind == "steer":
            s = parse_steer(text, resolve, 1e9)
            return ("+", -s.value) if s.op == "-" else (s.op, s.value)
        if kind == "filter":
            return (parse_filter(text, resolve, 1e9).threshold,)
        p = parse_promote(text, resolve, 1e9)
        return (p.item, p.value)
    except SpecError:
        return None


def test_spec_grammar_agrees_with_the_service_parser(tab, server):
    imp = load_module(tab, server, "state.js")
    cases = [("steer", s) for s in STEERS] + [("filter", f) for f in FILTERS] + [("promote", p) for p in PROMOTES]
    parsed = tab.page.evaluate(f"""async cases => {{
        const m = await {imp};
        return cases.map(([kind, text]) => {{
            const iv = m.parseSpec(kind, text);
            return iv === null ? null : {{iv, formatted: m.formatSpec(iv)}};
        }});
    }}""", cases)
    for (kind, text), js in zip(cases, parsed):
        python = _python_meaning(kind, text)
        assert (js is None) == (python is None), (kind, text, js, python)
        if js is None:
            continue
        iv = js["iv"]
        if kind == "steer":
            assert (iv["op"], iv["value"]) == pytest.approx(python), (kind, text)
        elif kind == "filter":
            assert (iv["threshold"],) == pytest.approx(python), (kind, text)
        else:
            assert (iv["item"], iv["value"]) == python, (kind, text)
        assert _python_meaning(kind, js["formatted"]) == python, (kind, text, js["formatted"])
    assert_no_console_errors(tab)


# -- screenshot --------------------------------------------------------------------------------------
def test_screenshot(tab, server, api, engine, experiments, slugs, tmp_path_factory):
    """A steered list beside the unsteered one, a neuron's details and the A/B arms, at desktop and
    phone widths (the phone layout is one column, without horizontal scrolling)."""
    page, (a, b) = tab.page, slugs

    def new_items(u: str) -> int:
        base = set(engine.recommend(u, 10).rows)
        return sum(r not in base for r in engine.recommend(u, 10, steer=[f"{a}:+4"], filter=[b]).rows)

    # a user whose list visibly changes, with items that move as well as new ones
    candidates = [u for u in engine.user_ids[1:80] if experiments.assign(u).arm != "control"]
    changes = {u: new_items(u) for u in candidates}
    user = next((u for u in candidates if 3 <= changes[u] <= 6), max(candidates, key=changes.get))
    open_page(tab, server, user=user, steer=f"{a}:+4", filter=b, neuron=a)
    rendered = wait_results(page, steer=[f"{a}:+4"], filter=[b])
    assert_highlights_match_api(page, api, rendered)
    page.wait_for_selector("#neuron-detail .bar-row")
    page.wait_for_function("() => document.getElementById('ab').dataset.status === 'ready'")
    page.evaluate("document.activeElement?.blur()")
    # nothing (such as a scrolled list's hidden text) makes the page taller than its content
    assert page.evaluate("document.documentElement.scrollHeight <= "
                         "document.querySelector('main').getBoundingClientRect().bottom + window.scrollY + 40")
    out = tmp_path_factory.mktemp("explorer-screenshots")
    path = out / "explorer.png"  # the top of the page: browser, steering, both lists
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": 1440, "height": 1240})
    assert path.stat().st_size > 10_000
    page.screenshot(path=str(out / "explorer-full.png"), full_page=True)
    if os.environ.get("STEERREC_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        README_SCREENSHOT.write_bytes(path.read_bytes())
    page.set_viewport_size({"width": 420, "height": 900})
    page.wait_for_function("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(out / "explorer-narrow.png"))
    print(f"explorer screenshots: {out}")
    assert_no_console_errors(tab)


# -- through Ray Serve -------------------------------------------------------------------------------
@pytest.mark.slow
def test_explorer_through_steerrec_serve(browser, engine, slugs, tmp_path):
    """The same page served by `steerrec serve` (Ray Serve, HAProxy ingress): assets, a steered
    list equal to the engine's, an arm preview, no console errors. One server start (~1 min)."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    from .test_http_integration import STARTUP_S, _read_json_line, _stop

    steer_slug = slugs[0]
    experiments = tmp_path / "experiments.json"
    experiments.write_text(json.dumps({"experiments": [{"name": "genre", "salt": "ray-explorer", "arms": [
        {"name": "control", "weight": 1}, {"name": "boost", "weight": 1, "steer": [f"{steer_slug}:+3"]}]}]}))
    port, log = free_port(), tmp_path / "serve.log"
    state = Path(tempfile.mkdtemp(prefix="sre-", dir="/tmp"))  # HAProxy socket paths must stay short
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "steerrec.cli", "serve", "--bundle", str(engine.bundle.root), "--host", "127.0.0.1",
           "--port", str(port), "--experiments", str(experiments), "--events", str(tmp_path / "events.db"),
           "--num-cpus", "2", "--state-dir", str(state)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    try:
        base = _read_json_line(proc, log, time.monotonic() + STARTUP_S)["url"]
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 60
            while client.get("/healthz").status_code != 200:
                assert time.monotonic() < deadline, "healthz never answered 200"
                time.sleep(0.5)
            assert client.get("/", follow_redirects=False).headers["location"] == "explorer/"
            assert "javascript" in client.get("/explorer/js/main.js").headers["content-type"]
        page = context.new_page()
        console = ConsoleLog().attach(page)
        user = engine.user_ids[2]
        page.goto(f"{base}/")
        page.fill("#user", user)
        page.press("#user", "Enter")
        page.fill("#add-neuron", steer_slug)
        page.click("#add-form button[value=steer]")
        page.locator("#interventions input[type=range]").press("End")
        wait_results(page, steer=[f"{steer_slug}:+10"])
        want = engine.recommend(user, 10, steer=[f"{steer_slug}:+10"])
        shown = page.eval_on_selector_all("#steered li", "els => els.map(e => e.dataset.id)")
        assert shown == [engine.item_ids[r] for r in want.rows]
        page.wait_for_function("() => document.querySelectorAll('#ab-arms .arm').length === 2")
        boost = page.locator("#ab-arms .arm[data-arm=boost] ol li").evaluate_all("els => els.map(e => e.dataset.id)")
        assert boost == [engine.item_ids[r] for r in engine.recommend(user, 10, steer=[f"{steer_slug}:+3"]).rows]
        assert console.all() == []
    finally:
        context.close()
        code = _stop(proc)
        shutil.rmtree(state, ignore_errors=True)
    assert code == 0, log.read_text()[-3000:]
