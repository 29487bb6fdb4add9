"""Drives headless Chromium over the DevTools protocol against a running `b2-backup demo`:
opens the page, clicks "Back up now", waits for the progress to finish and for a backup row in both
places with a verified mark, checks the destinations (B2 with its usage), opens the restore wizard and
closes it by keyboard, checks the translations, takes screenshots (light, dark, phone) and fails on
console errors. A second (S3) destination is not required: rows are matched by the places they include."""
import argparse
import base64
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from cdp import CDPError, Session

# A backup row in B2 and Home Assistant (and maybe S3 as well) with a verified mark.
IN_B2_AND_HA = '#backups tr[data-locations~="b2"][data-locations~="local"][data-verified="yes"]'

# Requests that may 404 while the add-on has no such endpoint yet: the page falls back gracefully.
OPTIONAL_ENDPOINTS = ("api/events", "api/setup-check", "/verify")


def log(message):
    print(f"browser-test: {message}", flush=True)


def wait_for_health(base, timeout, demo_pid):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if demo_pid:
            try:
                os.kill(demo_pid, 0)
            except ProcessLookupError:
                raise SystemExit("the demo exited before it answered")
        try:
            with urllib.request.urlopen(base + "health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"the demo did not answer {base}health within {timeout} s")


def start_chromium(binary, profile, timeout):
    process = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--no-default-browser-check", "--hide-scrollbars", "--disable-extensions", "--disable-background-networking", "--lang=en-US",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(profile, "chromium.log"), "w"), start_new_session=True)
    port_file = pathlib.Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"chromium exited with {process.returncode}; see {profile}/chromium.log")
        if port_file.exists() and port_file.read_text().strip():
            port = int(port_file.read_text().split()[0])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
                    pages = [target for target in json.load(response) if target["type"] == "page"]
                if pages:
                    return process, pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
        time.sleep(0.2)
    raise SystemExit(f"chromium did not open its DevTools port within {timeout} s")


class Page:
    def __init__(self, session, timeout):
        self.session = session
        self.timeout = timeout
        self.problems = []
        self.expected = []  # (part of the URL, status) of HTTP errors the test provokes on purpose
        session.listeners.append(self.on_event)

    def on_event(self, method, params):
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.problems.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.problems.append("console.error: " + " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            url = entry.get("url", "")
            if any(part in url for part in OPTIONAL_ENDPOINTS) and any(sign in entry["text"] for sign in ("404", "MIME type", "ERR_BLOCKED_BY_CLIENT")):
                log(f"optional endpoint not there yet (fine): {url}")
                return
            if any(part in url and f"status of {status}" in entry["text"] for part, status in self.expected):
                return
            self.problems.append(f"log {entry['source']}: {entry['text']} {url}")

    def wait(self, expression, what, timeout=None):
        """Polls a JavaScript condition until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.session.evaluate(f"(() => {{ const value = ({expression}); return value instanceof Node ? true : value; }})()")
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.session.pump(0.25)

    def open(self, url, languages="en-US,en"):
        self.session.call("Emulation.setUserAgentOverride", userAgent=self.session.evaluate("navigator.userAgent"), acceptLanguage=languages)
        self.session.call("Page.navigate", url=url)
        self.session.wait_event("Page.loadEventFired")
        self.wait("['ok', 'bad', 'warn', 'busy'].some((tone) => document.getElementById('state')?.classList.contains(tone))",
                  "the page to show the add-on's state")

    def click(self, selector):
        """A real mouse click in the middle of the element (scrolled into view)."""
        box = self.session.evaluate(f"""(() => {{
            const element = document.querySelector({json.dumps(selector)});
            if (!element) return null;
            element.scrollIntoView({{ block: 'center' }});
            const rect = element.getBoundingClientRect();
            return {{ x: rect.x + rect.width / 2, y: rect.y + rect.height / 2 }};
        }})()""")
        if not box:
            raise AssertionError(f"nothing to click at {selector}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.session.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)

    def key(self, key, code, key_code, text=None):
        """A key press as the keyboard makes it (text makes the keypress that activates buttons)."""
        down = {"text": text} if text else {}
        self.session.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=code, windowsVirtualKeyCode=key_code, **down)
        self.session.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=code, windowsVirtualKeyCode=key_code)

    def viewport(self, width, height, mobile=False):
        self.session.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)

    def color_scheme(self, scheme):
        self.session.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": scheme}])

    def screenshot(self, path, full_page=True, settle=0.3):
        self.session.pump(settle)  # let the layout settle after a viewport or media change
        params = {"format": "png"}
        if full_page:
            metrics = self.session.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self.session.call("Page.captureScreenshot", timeout=60, **params)["data"]
        path.write_bytes(base64.b64decode(data))
        log(f"screenshot {path}")


def check_translations(page):
    """Every language has the English keys, and the same {placeholders} in each string."""
    entries = page.session.evaluate("""Promise.all(['en', 'de', 'nl', 'fr', 'es'].map(async (language) =>
        [language, (await import(new URL(`assets/lang/${language}.js`, location.href))).default]))""")
    dictionaries = dict(entries)
    english = dictionaries["en"]

    def placeholders(value):
        import re
        texts = value.values() if isinstance(value, dict) else [value]
        return sorted({name for text in texts for name in re.findall(r"\{(\w+)\}", text)})

    problems = []
    for language, dictionary in dictionaries.items():
        missing = sorted(set(english) - set(dictionary))
        extra = sorted(set(dictionary) - set(english))
        if missing or extra:
            problems.append(f"{language}: missing {missing}, unknown {extra}")
        for key in set(english) & set(dictionary):
            if placeholders(english[key]) != placeholders(dictionary[key]):
                problems.append(f"{language}.{key}: placeholders {placeholders(dictionary[key])} != {placeholders(english[key])}")
    if problems:
        raise AssertionError("translations: " + "; ".join(problems))
    log(f"translations: {len(english)} strings in {', '.join(dictionaries)}")


def check_destinations(page, expect_s3=False):
    """The status card lists the destinations: B2 working, with its usage and the last verified copy once a backup is there;
    with a second destination (the demo on moto) S3 the same, and the backup's row holds its S3 copy."""
    b2 = "document.querySelector('#destinations li[data-destination=\"b2\"]')"
    page.wait(f"!document.getElementById('destinations-box').hidden && {b2}", "the destinations with a B2 entry")
    page.wait(f"{b2}.dataset.state === 'ok' && /\\d.*B/.test({b2}.querySelector('.usage').textContent) && {b2}.querySelector('.verified .name')",
              "B2's entry to be working, with its usage and the last verified copy")
    entries = page.session.evaluate("[...document.querySelectorAll('#destinations li[data-destination]')].map((entry) => "
                                    "`${entry.dataset.destination} (${entry.dataset.state}): ${entry.innerText.split(/\\s+/).join(' ')}`)")
    if not entries or not entries[0].startswith("b2 "):
        raise AssertionError(f"the destinations do not start with B2: {entries}")
    for entry in entries:
        log(f"destination {entry}")
    if expect_s3:
        s3 = "document.querySelector('#destinations li[data-destination=\"s3\"]')"
        page.wait(f"{s3} && {s3}.dataset.state === 'ok' && /\\d.*B/.test({s3}.querySelector('.usage').textContent) && {s3}.querySelector('.verified .name')",
                  "S3's entry to be working, with its usage and the last verified copy")
        page.wait("document.querySelector('#backups tr[data-locations~=\"s3\"][data-locations~=\"b2\"]')", "a backup row with its S3 and B2 copies")


def follow_backup(page, screenshot=None):
    """Waits for the progress box to show a job and for that job to end done; a screenshot mid-upload if asked."""
    page.wait("document.getElementById('progress').dataset.state", "the progress to appear")
    finished = "['done', 'failed'].includes(document.getElementById('progress').dataset.state)"
    if screenshot and not page.session.evaluate(finished):
        page.screenshot(screenshot, full_page=False, settle=0)
    page.wait(finished, "the backup to finish")
    state = page.session.evaluate("document.getElementById('progress').dataset.state")
    detail = " ".join(page.session.evaluate("document.getElementById('progress').innerText").split())
    if state != "done":
        raise AssertionError(f"the backup ended {state}: {detail}")
    log(f"progress finished: {detail}")


def more_flows(page):
    """Polling when the event stream is blocked, keyboard only; a check on request; delete with a refusal overridden."""
    page.session.call("Network.enable")
    page.session.call("Network.setBlockedURLs", urls=["*/api/events*"])
    page.session.call("Page.reload")
    page.session.wait_event("Page.loadEventFired")
    page.wait("document.getElementById('connection').dataset.state === 'polling'", "polling to take over from the blocked event stream")
    page.wait("!document.getElementById('backup-now').disabled && document.querySelector('#backups tr[data-slug]')", "the page after the reload")
    known = page.session.evaluate("[...document.querySelectorAll('#backups tr[data-slug]')].map((row) => row.dataset.slug)")
    # Keyboard only: Tab from the top reaches the skip link, then "Back up now"; Enter presses it.
    page.session.evaluate("document.activeElement?.blur(); window.scrollTo(0, 0)")
    for _ in range(2):
        page.key("Tab", "Tab", 9)
    focused = page.session.evaluate("document.activeElement.id")
    if focused != "backup-now":
        raise AssertionError(f"the second Tab stop is {focused!r}, not the Back up now button")
    page.key("Enter", "Enter", 13, text="\r")
    follow_backup(page)
    page.wait(f"[...document.querySelectorAll({json.dumps(IN_B2_AND_HA)})]"
              f".some((row) => !{json.dumps(known)}.includes(row.dataset.slug))", "the second backup in the table (polled)")
    log("polling fallback and keyboard: second backup done")
    page.session.call("Network.setBlockedURLs", urls=[])

    # A restorability check on request: the message reports the verdict once the catalog has it.
    verify = "#backups tr[data-slug]:first-child button.verify"
    if not page.session.evaluate(f"!!document.querySelector('{verify}')"):
        raise AssertionError("the newest backup has no Check button")
    page.click(verify)
    text = page.wait("document.getElementById('backups-message').classList.contains('ok') && document.getElementById('backups-message').textContent",
                     "the check's verdict", timeout=90)
    log(f"check on request: {text}")

    # Delete the newest backup from B2 only: the invariants refuse (newest verified copy) until "Delete anyway".
    slug = page.session.evaluate("document.querySelector('#backups tr[data-slug]').dataset.slug")
    page.expected.append((f"api/backups/{slug}?location=b2", 409))
    page.click(f"#backups tr[data-slug=\"{slug}\"] button.danger")
    page.wait("document.activeElement.closest('dialog[open]')", "the delete dialog with focus inside")
    page.click("dialog[open] input[value=b2]")
    page.click("dialog[open] button[value=delete]")
    refused = page.wait("document.querySelector('dialog[open] .message.bad')?.textContent || (!document.querySelector('dialog[open]') && 'deleted')",
                        "the delete to be answered")
    if refused != "deleted":
        log(f"delete refused as expected: {refused}")
        label = page.session.evaluate("document.querySelector('dialog[open] button[value=delete]').textContent")
        if label != "Delete anyway":
            raise AssertionError(f"a refused delete offers {label!r}, not 'Delete anyway'")
        page.click("dialog[open] button[value=delete]")
        page.wait("!document.querySelector('dialog[open]')", "the forced delete to close the dialog")
    page.wait(f"(document.querySelector('#backups tr[data-slug=\"{slug}\"]')?.dataset.locations ?? 'b2').split(' ').includes('b2') === false",
              "the backup to be gone from B2")
    log(f"deleted {slug} from B2 ({'forced' if refused != 'deleted' else 'allowed'})")


def run(page, url, out, expect_s3=False):
    started = time.monotonic()
    page.viewport(1280, 900)
    page.color_scheme("light")
    page.open(url)
    label = page.session.evaluate("document.getElementById('backup-now').textContent")
    if label != "Back up now":
        raise AssertionError(f"the button says {label!r}, not 'Back up now'")
    page.wait("!document.getElementById('backup-now').disabled", "the Back up now button to be enabled")
    page.wait("document.querySelector('#backups p.empty, #backups table')", "the backups list")

    log("clicking Back up now")
    page.click("#backup-now")
    follow_backup(page, out / "dashboard-progress.png")
    page.wait(f"document.querySelector({json.dumps(IN_B2_AND_HA)})", "a backup row in B2 and Home Assistant with a verified mark")
    row = page.session.evaluate(f"document.querySelector({json.dumps(IN_B2_AND_HA)}).innerText")
    log(f"backups table: {' '.join(row.split())}")
    page.wait("document.querySelector('#runs tr[data-state=\"done\"]') && document.querySelector('#chart svg rect.bar-size')",
              "the run log and the chart to show the backup")
    page.wait("document.getElementById('state').classList.contains('ok')", "the state to go back to idle")
    page.wait("!document.getElementById('backup-now').disabled", "the Back up now button to be enabled again")
    check_destinations(page, expect_s3)

    # The restore wizard: a modal dialog with focus inside; Escape closes it and focus returns to its button.
    page.click("#backups tr[data-verified=\"yes\"] .actions button:nth-last-child(2)")
    page.wait("document.querySelector('dialog[open]') && document.activeElement.closest('dialog[open]')", "the restore dialog with focus inside")
    text = page.session.evaluate("document.querySelector('dialog[open]').innerText")
    if "restarts" not in text or not page.session.evaluate("!!document.querySelector('dialog[open] input[type=password]')"):
        raise AssertionError("the restore wizard lacks the restart warning or the password field")
    page.screenshot(out / "restore-dialog.png", full_page=False)
    page.key("Escape", "Escape", 27)
    page.wait("!document.querySelector('dialog[open]') && document.activeElement?.textContent === 'Restore'", "the dialog to close and focus to return")

    check_translations(page)
    page.session.evaluate("window.scrollTo(0, 0)")
    page.screenshot(out / "dashboard-light.png")
    page.color_scheme("dark")
    page.screenshot(out / "dashboard-dark.png")
    page.color_scheme("light")
    page.viewport(390, 844, mobile=True)
    overflow = page.session.evaluate("document.documentElement.scrollWidth")
    if overflow > 390:
        raise AssertionError(f"the phone layout is {overflow} px wide, more than the 390 px screen")
    page.screenshot(out / "dashboard-phone.png")
    page.color_scheme("dark")
    page.screenshot(out / "dashboard-phone-dark.png", full_page=False)
    page.color_scheme("light")

    page.viewport(1280, 900)
    more_flows(page)

    # German from navigator.languages.
    page.open(url, languages="de-DE,de,en")
    lang = page.session.evaluate("document.documentElement.lang + ' ' + document.getElementById('backup-now').textContent")
    if not lang.startswith("de ") or lang.endswith("Back up now"):
        raise AssertionError(f"German not chosen: {lang!r}")
    log(f"German page: {lang}")

    page.session.pump(1)
    if page.problems:
        raise AssertionError("console errors:\n  " + "\n  ".join(page.problems))
    log(f"no console errors; page checks took {time.monotonic() - started:.1f} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--demo-pid", type=int)
    parser.add_argument("--expect-s3", action="store_true", help="the demo has a second (S3) destination")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--chromium-pid-file", help="where to write Chromium's process group, for the caller's cleanup")
    arguments = parser.parse_args()
    # SIGTERM (a timeout, the caller's trap) unwinds like an error, so Chromium is stopped in finally.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = pathlib.Path(arguments.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    url = arguments.url if arguments.url.endswith("/") else arguments.url + "/"

    wait_for_health(url, arguments.timeout, arguments.demo_pid)
    profile = tempfile.mkdtemp(prefix="b2-browser-")
    chromium = None
    try:
        chromium, websocket_url = start_chromium(arguments.chromium, profile, arguments.timeout)
        if arguments.chromium_pid_file:
            pathlib.Path(arguments.chromium_pid_file).write_text(str(chromium.pid))
        session = Session(websocket_url)
        for domain in ("Page", "Runtime", "Log"):
            session.call(f"{domain}.enable")
        page = Page(session, arguments.timeout)
        try:
            run(page, url, out, arguments.expect_s3)
        except (AssertionError, CDPError, TimeoutError) as error:
            log(f"FAILED: {error}")
            if page.problems:
                log("console errors so far:\n  " + "\n  ".join(page.problems))
            try:
                page.screenshot(out / "failure.png")
            except Exception:
                pass
            return 1
        session.close()
    except (CDPError, TimeoutError, ConnectionError) as error:
        log(f"FAILED: {error}")
        return 1
    finally:
        if chromium and chromium.poll() is None:
            os.killpg(chromium.pid, signal.SIGTERM)
            try:
                chromium.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(chromium.pid, signal.SIGKILL)
        shutil.rmtree(profile, ignore_errors=True)
    log(f"passed; screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
