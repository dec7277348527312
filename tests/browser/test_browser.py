"""The dataset browser in a real browser: headless Chromium (Selenium and
chromedriver from Debian) against a real server on a sample store.
Screenshots are written to the test output folder."""

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import MARKUP, NARROW_TOKEN


def wait(browser, condition, timeout=30):
    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def js(browser, script, *args):
    return browser.execute_script(script, *args)


def open_page(browser, url):
    browser.get(url)
    # A hash change alone does not reload; start every test from a fresh page.
    browser.refresh()


def images_loaded(browser, selector):
    """The images of `selector` once all have loaded: [(naturalWidth, naturalHeight)]."""
    def check(d):
        states = js(d, "return [...document.querySelectorAll(arguments[0])].map(i => [i.dataset.loaded || '', "
                       "i.naturalWidth, i.naturalHeight])", selector)
        if not states or any(s[0] == "" for s in states):
            return False
        return states
    return wait(browser, check)


def test_overview_lists_every_task_with_its_count(server, stats, browser, output_dir):
    open_page(browser, server.url + "/#/")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.task-row"))
    rows = js(browser, "return [...document.querySelectorAll('tr.task-row')].map(r => "
                       "[r.dataset.task, Number(r.dataset.count), r.querySelector('.instances').textContent])")
    want = {}
    for g in stats["groups"]:
        want[g["task"]] = want.get(g["task"], 0) + g["instances"]
    assert {t: n for t, n, _ in rows} == want
    assert all(text.replace(",", "") == str(n) for _, n, text in rows)
    assert browser.find_element(By.ID, "total-instances").text.replace(",", "") == str(stats["instances"])
    # Both charts drawn, one bar per task and per language.
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-tasks g")) == len(want)
    langs = {g["lang"] for g in stats["groups"]}
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-languages g")) == len(langs)
    browser.save_screenshot(str(output_dir / "overview.png"))


def test_language_filter_shows_only_that_language(server, stats, browser, output_dir):
    open_page(browser, server.url + "/#/browse")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#grid .card"))
    Select(browser.find_element(By.ID, "filter-languages")).select_by_value("fr")
    wait(browser, lambda d: "languages=fr" in d.current_url and d.find_elements(By.CSS_SELECTOR, "#page-info")
         and all(c.get_attribute("data-language") == "fr" for c in d.find_elements(By.CSS_SELECTOR, "#grid .card")))
    cards = browser.find_elements(By.CSS_SELECTOR, "#grid .card")
    fr = sum(g["instances"] for g in stats["groups"] if g["lang"] == "fr")
    assert fr > 0 and len(cards) == min(fr, 24)
    assert int(browser.find_element(By.ID, "page-info").get_attribute("data-total")) == fr
    thumbs = images_loaded(browser, "#grid .card img")
    assert all(state == f"{w}x{h}" and w > 0 and h > 0 for state, w, h in thumbs)
    # Shuffle: a seed in the address, the same instances.
    before = sorted(c.get_attribute("data-id") for c in cards)
    browser.find_element(By.ID, "shuffle").click()
    wait(browser, lambda d: "seed=" in d.current_url and "shuffled" in d.find_element(By.ID, "page-info").text)
    after = sorted(c.get_attribute("data-id") for c in browser.find_elements(By.CSS_SELECTOR, "#grid .card"))
    assert after == before
    browser.save_screenshot(str(output_dir / "browse-fr.png"))


def test_instance_page_shows_images_and_texts(server, browser, output_dir):
    x = server.json("/api/instances/msrvtt/train/en/0")["instance"]
    assert len(x["images"]) > 1  # video frames
    open_page(browser, server.url + "/#/instance/msrvtt/train/en/0")
    wait(browser, lambda d: d.find_elements(By.ID, "instance-outputs"))
    frames = images_loaded(browser, "img.instance-image")
    assert len(frames) == len(x["images"])
    assert all(state != "error" and w > 0 and h > 0 for state, w, h in frames)
    assert browser.find_element(By.ID, "instance-outputs").text == x["outputs"]
    assert browser.find_element(By.ID, "instance-instruction").text == x["instruction"]
    assert browser.find_element(By.ID, "instance-license").text == x["license"]
    assert "m3serve-client get --target 127.0.0.1:%d msrvtt/train/en/0" % server.port in \
        browser.find_element(By.ID, "cli-command").text
    assert 'client.get(["msrvtt/train/en/0"])' in browser.find_element(By.ID, "python-snippet").text
    browser.save_screenshot(str(output_dir / "instance-video.png"))


def test_markup_in_a_row_renders_as_text(server, browser, output_dir):
    rows = server.json("/api/instances?tasks=vqa-v2&page_size=200")["instances"]
    row = next(x for x in rows if x["inputs"].startswith("<script>"))
    open_page(browser, server.url + "/#/instance/" + row["id"])
    wait(browser, lambda d: d.find_elements(By.ID, "instance-inputs"))
    images_loaded(browser, "img.instance-image")
    assert browser.find_element(By.ID, "instance-inputs").text == MARKUP
    assert js(browser, "return window.injected") is None
    # No element came from the row: the only script is the page's own, and no <img src=x>.
    assert js(browser, "return document.scripts.length") == 1
    assert js(browser, "return [...document.images].filter(i => i.getAttribute('src') === 'x').length") == 0
    js(browser, "document.getElementById('instance-inputs').scrollIntoView()")
    browser.save_screenshot(str(output_dir / "markup-as-text.png"))
    # The same in the grid, where the text is shortened.
    open_page(browser, server.url + "/#/browse?tasks=vqa-v2&page_size=200")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'.card[data-id="{row["id"]}"]'))
    assert js(browser, "return window.injected") is None


def test_narrow_token_sees_only_its_licenses(token_server, browser, output_dir):
    open_page(browser, token_server.url + "/#/")
    js(browser, "sessionStorage.clear()")
    browser.refresh()
    form = wait(browser, lambda d: d.find_element(By.ID, "token-form") if d.find_element(By.ID, "token-form").is_displayed() else False)
    browser.save_screenshot(str(output_dir / "token-form.png"))
    form.find_element(By.ID, "token-input").send_keys(NARROW_TOKEN)
    form.find_element(By.ID, "token-submit").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.task-row"))
    tasks = js(browser, "return [...document.querySelectorAll('tr.task-row')].map(r => r.dataset.task)")
    want = {t["name"] for t in token_server.json("/api/catalog", token=NARROW_TOKEN)["tasks"]}
    assert set(tasks) == want and "coco" not in want
    licenses = js(browser, "return [...document.querySelectorAll('tr.task-row td:nth-child(3)')].map(c => c.textContent)")
    assert set(licenses) == {"CC-BY-4.0"}
    browser.save_screenshot(str(output_dir / "narrow-token-overview.png"))
    # The token stays for the tab: browsing works, images load through it.
    browser.get(token_server.url + "/#/browse")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#grid .card"))
    thumbs = images_loaded(browser, "#grid .card img")
    assert thumbs and all(s != "error" and w > 0 for s, w, _ in thumbs)
    assert {c.get_attribute("data-task") for c in browser.find_elements(By.CSS_SELECTOR, "#grid .card")} <= want
    # A task outside the token, asked for by address: the API's refusal is shown.
    browser.get(token_server.url + "/#/instance/coco/train/en/0")
    err = wait(browser, lambda d: d.find_elements(By.ID, "error"))
    assert err[0].get_attribute("data-status") == "403"
    browser.save_screenshot(str(output_dir / "narrow-token-refused.png"))
    js(browser, "sessionStorage.clear()")
