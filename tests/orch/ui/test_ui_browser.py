"""``orch ui`` in a real browser: Debian's chromium driven by Selenium through Debian's
chromedriver, against ``orch ui`` started as a process over stores of real runs.

Over quickstart runs: open the runs list, filter to the runs whose router escalated, open
one, open a decision and check what it shows against the store, compare two runs. Over the
quickstart and the ACAR example's runs in one store: filter by pipeline and decision text to
the ACAR runs escalated to the full ensemble, and check σ as shown. Each screenshot must be a
picture, not a blank page. Over the hostile run: no dialog opens and no
injected script leaves its mark, with the page's own script running (CSP holds).

Skipped without /usr/bin/chromium and /usr/bin/chromedriver, unless ORCH_REQUIRE_BROWSER=1
(CI sets it), which makes a missing browser a failure.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import orch_ui

from traces import DirectoryStore, load_run_view

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 30  # seconds a page may take to show what is awaited (a bound, never a measure)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install selenium; the dev extra has it)")
    if missing:
        if os.environ.get("ORCH_REQUIRE_BROWSER") == "1":
            pytest.fail(
                f"ORCH_REQUIRE_BROWSER=1 but missing: {missing}; apt-get install "
                "chromium chromium-driver"
            )
        pytest.skip(f"missing {missing} (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(WAIT)
    try:
        yield browser
    finally:
        browser.quit()


def wait_for(driver: object, css: str) -> object:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def not_blank(driver: object, path: Path) -> None:
    from PIL import Image

    png = driver.get_screenshot_as_png()  # type: ignore[attr-defined]
    path.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width >= 1000 and image.height >= 600
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 100, path  # text, boxes: not one colour
    # Not a near-empty page either: a good share of it is not the background.
    background = max(colours)[0]
    assert background < 0.97 * image.width * image.height, path


def rows(driver: object) -> list[str]:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, "tr.run")  # type: ignore[attr-defined]
    return [r.get_attribute("data-run") for r in found]


def test_browse_filter_open_expand_compare(
    driver: object, quick_store: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    store = DirectoryStore(quick_store)
    shots = Path(os.environ.get("ORCH_UI_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with orch_ui(quick_store) as (url, _port):
        d = driver
        d.get(url)  # type: ignore[attr-defined]
        wait_for(d, "table#runs")
        assert sorted(rows(d)) == sorted(store.run_ids())
        not_blank(d, shots / "ui-runs.png")

        # Filter by the text of the decisions: the runs whose router escalated.
        box = d.find_element(By.ID, "f-text")  # type: ignore[attr-defined]
        box.send_keys("escalat")
        d.find_element(By.ID, "f-apply").click()  # type: ignore[attr-defined]
        wait_for(d, "a#f-clear")
        escalated = rows(d)
        expected = {
            r
            for r in store.run_ids()
            if any(
                "escalat" in dec.reason
                for s in load_run_view(store, r).steps.values()
                for dec in s.decisions
            )
        }
        assert set(escalated) == expected and escalated
        not_blank(d, shots / "ui-runs-escalated.png")

        # Open one and expand its router's decision.
        run_id = escalated[0]
        d.find_element(By.CSS_SELECTOR, f'tr.run[data-run="{run_id}"] a.run-link').click()  # type: ignore[attr-defined]
        wait_for(d, "table#run-summary")
        view = load_run_view(store, run_id)
        assert d.find_element(By.ID, "s-root").text == view.head.root_hash  # type: ignore[attr-defined]
        assert d.find_element(By.ID, "verify-badge").get_attribute("data-ok") == "1"  # type: ignore[attr-defined]
        vote = view.steps["vote"].decisions[0]
        details = d.find_element(By.CSS_SELECTOR, 'details.decision[data-step="vote"]')  # type: ignore[attr-defined]
        assert details.get_attribute("open") is None
        reason = details.find_element(By.CSS_SELECTOR, ".reason")
        assert not reason.is_displayed()
        details.find_element(By.TAG_NAME, "summary").click()
        assert details.get_attribute("open") is not None and reason.is_displayed()
        assert reason.text == vote.reason
        chosen = details.find_elements(By.CSS_SELECTOR, "li.candidate.chosen")
        assert [c.get_attribute("data-candidate") for c in chosen] == vote.chosen
        shown = [
            c.get_attribute("data-candidate")
            for c in details.find_elements(By.CSS_SELECTOR, "li.candidate")
        ]
        assert shown == vote.candidates
        evidence = details.find_element(By.CSS_SELECTOR, 'dd[data-key="answers"]').text
        for model, answer in vote.evidence["answers"].items():
            assert f'"{model}":"{answer}"' in evidence
        boxes = d.find_elements(By.CSS_SELECTOR, "svg.dag g.dag-node")  # type: ignore[attr-defined]
        assert {b.get_attribute("data-step"): b.get_attribute("data-status") for b in boxes} == (
            view.statuses()
        )
        not_blank(d, shots / "ui-run.png")

        # Compare it with another run, through the field on its page.
        other = next(r for r in rows_of(store) if r != run_id)
        field = d.find_element(By.ID, "compare-b")  # type: ignore[attr-defined]
        field.send_keys(other)
        field.submit()
        wait_for(d, "#compare-verdict")
        verdict = d.find_element(By.ID, "compare-verdict")  # type: ignore[attr-defined]
        assert verdict.get_attribute("data-identical") == "0"
        not_blank(d, shots / "ui-compare.png")


def rows_of(store: DirectoryStore) -> list[str]:
    return sorted(store.run_ids())


def test_hostile_text_runs_no_script(
    driver: object, xss_store: tuple[Path, str], tmp_path: Path
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    root, run_id = xss_store
    with orch_ui(root) as (url, _port):
        for page in (url, f"{url}runs/{run_id}", f"{url}?q=escalating"):
            driver.get(page)  # type: ignore[attr-defined]
            wait_for(driver, "main#main")
            with pytest.raises(NoAlertPresentException):
                driver.switch_to.alert.text  # type: ignore[attr-defined]  # noqa: B018
            marker = driver.execute_script("return window.__orch_xss")  # type: ignore[attr-defined]
            assert marker is None, page
        # Open every fold on the run page: the hostile text shows, as text, and still no mark.
        driver.get(f"{url}runs/{run_id}")  # type: ignore[attr-defined]
        wait_for(driver, "details.decision")
        for summary in driver.find_elements(By.CSS_SELECTOR, "details > summary"):  # type: ignore[attr-defined]
            driver.execute_script("arguments[0].parentElement.open = true", summary)  # type: ignore[attr-defined]
        reason = driver.find_element(By.CSS_SELECTOR, "details.decision .reason").text  # type: ignore[attr-defined]
        assert "<script>alert(1)</script>" in reason
        assert driver.execute_script("return window.__orch_xss") is None  # type: ignore[attr-defined]
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # type: ignore[attr-defined]  # noqa: B018
        # Our own script is allowed to run (the CSP lets 'self' in): it loaded.
        loaded = driver.execute_script(  # type: ignore[attr-defined]
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert any(name.endswith("/static/ui.js") for name in loaded)
        not_blank(driver, tmp_path / "ui-hostile.png")


def test_evaluation_hover_and_open_a_configuration(
    driver: object, eval_folder: tuple[Path, Path, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from orch.render import fmt_usd
    from routers.eval import _evalfile as ef

    folder, root, name = eval_folder
    ev = ef.load(folder / name)
    shots = Path(os.environ.get("ORCH_UI_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with orch_ui(root, "--evals", str(folder)) as (url, _port):
        d = driver
        d.get(f"{url}evals")  # type: ignore[attr-defined]
        wait_for(d, "a.eval-link")
        d.find_element(By.CSS_SELECTOR, "a.eval-link").click()  # type: ignore[attr-defined]
        wait_for(d, "svg#cq-plot")
        # The labels as chromium draws them: none overlaps another or any point's marker,
        # all inside the plot's frame, and every point of this (uncrowded) file has one.
        drawn = d.execute_script(  # type: ignore[attr-defined]
            """const box = (e) => { const b = e.getBBox();
                 return [b.x, b.y, b.x + b.width, b.y + b.height]; };
               const svg = document.getElementById("cq-plot");
               const all = (css) => Array.from(svg.querySelectorAll(css)).map(box);
               return {labels: all("g.pt text.pt-label"), markers: all("g.pt circle, g.pt polygon"),
                       frame: box(svg.querySelector("rect.frame"))};"""
        )
        labels, frame = drawn["labels"], drawn["frame"]
        assert len(labels) == len(d.find_elements(By.CSS_SELECTOR, "g.pt:not(.pt-curve)"))  # type: ignore[attr-defined]

        def overlap(a: list[float], b: list[float]) -> bool:
            return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

        for a, b in itertools.combinations(labels, 2):
            assert not overlap(a, b), (a, b)
        for a in labels:
            assert frame[0] <= a[0] and a[2] <= frame[2] and frame[1] <= a[1] and a[3] <= frame[3]
            assert not any(overlap(a, m) for m in drawn["markers"]), a
        # Hover the point of each configuration: the tooltip shows its label and its point,
        # as the file has them.
        for i, c in enumerate(ev.configs):
            point = d.find_element(By.CSS_SELECTOR, f'g.pt-config[data-config="{i}"] circle')  # type: ignore[attr-defined]
            ActionChains(d).move_to_element(point).perform()
            tip = d.find_element(By.ID, "cq-tip")  # type: ignore[attr-defined]
            assert tip.is_displayed()
            cost, quality = c.summary["cost_per_task_usd"], c.summary["accuracy"]
            assert tip.text == (
                f"{c.label} (configuration, {len(c.runs)} runs): quality {quality:.4f}, "
                f"cost per task {fmt_usd(cost, 8)}"
            )
            title = d.execute_script(  # type: ignore[attr-defined]
                "return arguments[0].parentElement.querySelector('title').textContent", point
            )
            assert title == tip.text
        not_blank(d, shots / "ui-evaluation.png")
        # Click the last hovered configuration: the runs list shows exactly its runs.
        last = ev.configs[-1]
        d.find_element(  # type: ignore[attr-defined]
            By.CSS_SELECTOR, f'g.pt-config[data-config="{len(ev.configs) - 1}"] circle'
        ).click()
        wait_for(d, "p#eval-scope")
        assert sorted(rows(d)) == sorted(r.run_id for r in last.runs)
        not_blank(d, shots / "ui-evaluation-runs.png")


def test_replay_a_run_from_its_page(
    driver: object, replayable_store: tuple[Path, list[str]], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    root, ids = replayable_store
    store = DirectoryStore(root)
    before = sorted(store.run_ids())
    shots = Path(os.environ.get("ORCH_UI_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with orch_ui(root, "--allow-replay") as (url, _port):
        d = driver
        d.get(f"{url}runs/{ids[0]}")  # type: ignore[attr-defined]
        wait_for(d, "form#replay-form")
        d.find_element(By.ID, "replay-start").click()  # type: ignore[attr-defined]
        wait_for(d, "section#replay-job")
        verdict = wait_for(d, "p#replay-verdict")  # the page reloads itself once it ended
        assert verdict.get_attribute("data-clean") == "1"  # type: ignore[attr-defined]
        assert "clean" in verdict.text  # type: ignore[attr-defined]
        steps = len(load_run_view(store, ids[0]).steps)
        assert d.find_element(By.ID, "replay-done").text == str(steps)  # type: ignore[attr-defined]
        assert d.find_element(By.ID, "replay-total").text == str(steps)  # type: ignore[attr-defined]
        assert load_run_view(store, ids[0]).head.root_hash in verdict.text  # type: ignore[attr-defined]
        not_blank(d, shots / "ui-replay.png")
    assert sorted(DirectoryStore(root).run_ids()) == before  # not recorded


@pytest.fixture(scope="module")
def mixed_store(quick_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart runs and six runs of the ACAR example (σ escalation), in one store."""
    import shutil

    from example_modules import load_example

    import orch

    acar_sigma = load_example("acar_sigma", "acar_sigma_for_ui")
    root = tmp_path_factory.mktemp("ui-mixed") / "store"
    shutil.copytree(quick_store, root)
    store = DirectoryStore(root)
    for item in acar_sigma.items()[:6]:
        question = {"question": item["question"]}
        result = orch.run(
            acar_sigma.pipeline, question, store=store, seed=3, services=acar_sigma.services()
        )
        assert result.ok, result.error
    store.close()
    return root


def test_acar_runs_escalated_to_the_full_ensemble(
    driver: object, mixed_store: Path, tmp_path: Path
) -> None:
    # A store of the quickstart and the ACAR example: the pipeline filter and the text of the
    # decisions find exactly the ACAR runs whose probes all differed (σ = 1: full ensemble).
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    store = DirectoryStore(mixed_store)
    shots = Path(os.environ.get("ORCH_UI_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with orch_ui(mixed_store) as (url, _port):
        d = driver
        d.get(url)  # type: ignore[attr-defined]
        wait_for(d, "table#runs")
        Select(d.find_element(By.ID, "f-pipeline")).select_by_value("acar-sigma")  # type: ignore[attr-defined]
        d.find_element(By.ID, "f-text").send_keys("full ensemble")  # type: ignore[attr-defined]
        d.find_element(By.ID, "f-apply").click()  # type: ignore[attr-defined]
        wait_for(d, "a#f-clear")
        full = rows(d)
        views = {r: load_run_view(store, r) for r in store.run_ids()}
        expected = {
            r
            for r, v in views.items()
            if v.head.pipeline == "acar-sigma"
            and any(dec.chosen == ["full"] for dec in v.steps["acar"].decisions)
        }
        assert set(full) == expected and full
        not_blank(d, shots / "ui-runs-acar-full.png")
        run_id = full[0]
        d.find_element(By.CSS_SELECTOR, f'tr.run[data-run="{run_id}"] a.run-link').click()  # type: ignore[attr-defined]
        wait_for(d, "table#run-summary")
        decision = views[run_id].steps["acar"].decisions[0]
        details = d.find_element(By.CSS_SELECTOR, 'details.decision[data-step="acar"]')  # type: ignore[attr-defined]
        details.find_element(By.TAG_NAME, "summary").click()
        assert details.find_element(By.CSS_SELECTOR, ".reason").text == decision.reason
        sigma = details.find_element(By.CSS_SELECTOR, 'dd[data-key="sigma"]').text
        assert float(sigma.rsplit(":", 1)[-1]) == decision.evidence["sigma"] == 1.0
        not_blank(d, shots / "ui-run-acar.png")
