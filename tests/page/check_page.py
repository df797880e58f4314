#!/usr/bin/python3
"""Drive kiln serve's page (`/`) in headless Chromium and check what a user sees.

Usage: check_page.py http://127.0.0.1:PORT [--key KEY]

With --key (a server started with --api-key KEY) it first checks that the page shows the
key field, then types the key into it; without, that the field stays hidden.

Checks, in order: the page loads with no key; a streamed completion shows tokens shaded by
probability; hovering a token shows its top alternatives with log-probs; chat mode streams
shaded tokens too; the lens tab draws blocks x positions cells, as many as /v1/lens answers;
the page fetched nothing from another origin. Needs Debian's chromium, chromium-driver and
python3-selenium. Exits non-zero with a message on the first failed check.
"""

import json
import sys
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

TIMEOUT = 120  # seconds; lavapipe is slow


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print("ok: " + message)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]:
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def set_value(driver, element_id, value):
    element = driver.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(str(value))


def generate(driver, mode, prompt):
    """Run one generation in `mode` and return the shaded token spans."""
    Select(driver.find_element(By.ID, "mode")).select_by_value(mode)
    set_value(driver, "prompt", prompt)
    set_value(driver, "temperature", 0.8)
    set_value(driver, "max-tokens", 12)
    driver.find_element(By.ID, "generate").click()
    status = driver.find_element(By.ID, "status")
    WebDriverWait(driver, TIMEOUT).until(lambda d: status.text.startswith(("done", "stopped")) or "error" in status.get_attribute("class"))
    check(status.text.startswith("done"), f"{mode}: the generation finished ({status.text!r})")
    return driver.find_elements(By.CSS_SELECTOR, "#output .tok")


def check_tokens(mode, tokens):
    check(len(tokens) > 0, f"{mode}: streamed tokens appeared ({len(tokens)})")
    for t in tokens:
        p = float(t.get_attribute("data-prob"))
        if not 0.0 <= p <= 1.0:
            fail(f"{mode}: a token's probability {p} is outside [0, 1]")
        if not t.value_of_css_property("background-color").startswith("rgb"):
            fail(f"{mode}: a token is not shaded")
    shades = {t.value_of_css_property("background-color") for t in tokens}
    empty = sum(1 for t in tokens if t.text == "")
    print(f"ok: {mode}: every token carries a probability and a shade ({len(shades)} distinct shades; "
          f"{empty} without text of their own, part of a multi-byte character)")


def check_hover(driver, mode, token, exact):
    """Hover `token`: its alternatives appear, 5 of them when `exact` (chat lists each
    alternative; the completions API's {text: logprob} map merges alternatives that
    decode to the same text, so it may show fewer)."""
    driver.find_element(By.ID, "prompt").click()  # move away first so mouseenter fires
    ActionChains(driver).move_to_element(token).perform()
    alts = driver.find_element(By.ID, "alts")
    try:
        WebDriverWait(driver, 10).until(lambda d: alts.is_displayed())
    except Exception:
        fail(f"{mode}: hovering the token {token.text!r} (size {token.size}) showed no alternatives")
    rows = alts.find_elements(By.CSS_SELECTOR, "tr")
    if exact:
        check(len(rows) == 5, f"{mode}: hovering a token shows its top-5 alternatives ({len(rows)} rows)")
    else:
        check(1 <= len(rows) <= 5, f"{mode}: hovering a token shows its top alternatives ({len(rows)} rows, at most 5)")
    for row in rows:
        cells = row.find_elements(By.TAG_NAME, "td")
        logprob = float(cells[1].text)
        if logprob > 0.0:
            fail(f"an alternative's log-prob {logprob} is positive")
    print(f"ok: {mode}: every alternative shows a log-prob <= 0")


def check_lens(driver, base, key):
    driver.find_element(By.ID, "tab-lens").click()
    prompt = "The capital of France is"
    set_value(driver, "lens-prompt", prompt)
    set_value(driver, "lens-top", 3)
    driver.find_element(By.ID, "lens-run").click()
    status = driver.find_element(By.ID, "lens-status")
    WebDriverWait(driver, TIMEOUT).until(lambda d: "blocks" in status.text or "error" in status.get_attribute("class"))
    check("blocks" in status.text, f"the lens ran ({status.text!r})")
    request = urllib.request.Request(base + "/v1/lens", data=json.dumps({"prompt": prompt, "top": 3}).encode(),
                                     headers=api_headers(key))
    lens = json.load(urllib.request.urlopen(request, timeout=TIMEOUT))
    want = len(lens["blocks"]) * len(lens["prompt_ids"])
    cells = driver.find_elements(By.CSS_SELECTOR, "#lens-grid .lens-cell")
    check(len(cells) == want, f"the lens grid has blocks x positions = {want} cells ({len(cells)})")
    first = lens["lens"][0][0]["top"][0]
    check(cells[0].get_attribute("title").startswith(json.dumps(first["token"])), "the first cell's tooltip starts with its top token")


def api_headers(key):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    return headers


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--key"):
        fail("usage: check_page.py http://HOST:PORT [--key KEY]")
    base = args[0].rstrip("/")
    key = args[2] if len(args) == 3 else None
    driver = browser()
    try:
        driver.get(base + "/")
        check(driver.title == "kiln", "the page loads")
        key_box = driver.find_element(By.ID, "key-box")
        if key:
            WebDriverWait(driver, 30).until(lambda d: key_box.is_displayed())
            print("ok: the server wants a key and the page shows the key field")
            field = driver.find_element(By.ID, "api-key")
            field.send_keys(key)
            field.send_keys("\t")  # the change event reloads the model id with the key
        else:
            check(not key_box.is_displayed(), "no key needed: the key field stays hidden")
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "model-name").text != "")
        print("ok: the page shows the model id " + driver.find_element(By.ID, "model-name").text)
        tokens = generate(driver, "completion", "Once upon a time")
        check_tokens("completion", tokens)
        for t in tokens:
            check_hover(driver, "completion", t, exact=False)
        tokens = generate(driver, "chat", "Hello")
        check_tokens("chat", tokens)
        check_hover(driver, "chat", tokens[0], exact=True)
        check_lens(driver, base, key)
        urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        others = [u for u in urls if not u.startswith(base + "/")]
        check(not others, f"every fetch went to this server ({len(urls)} fetches, others: {others})")
        logs = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        if key:  # the first /v1/models without the key is a 401 the console reports
            logs = [e for e in logs if "status of 401" not in e.get("message", "")]
        check(not logs, f"no errors in the browser console ({logs})")
    finally:
        driver.quit()
    print("PAGE OK")


if __name__ == "__main__":
    main()
