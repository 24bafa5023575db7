"""Firefox itself uses Tidings as its push service: a page subscribes through Firefox's push
client (which connects to the gateway), an application server pushes with pywebpush and VAPID,
and Firefox's service worker gets the decrypted text.

Needs ``firefox-esr`` (``.ci/run`` installs it). Without it the test is skipped, unless
``TIDINGS_REQUIRE_FIREFOX=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import running_node
from tests.e2e.test_webpush import push, vapid_keys

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")

PAGE = """<!doctype html><title>push test</title><script>
const key = "%(key)s";
function bytes(b64) {
  const s = atob(b64.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64.length + 3) %% 4));
  return Uint8Array.from(s, c => c.charCodeAt(0));
}
const say = (path, body) => fetch(path, {method: "POST", body});
async function main() {
  const reg = await navigator.serviceWorker.register("/sw.js");
  await navigator.serviceWorker.ready;
  for (let i = 0; i < 30; i++) {  // a page opened at start may ask before push is up
    try {
      const sub = await Promise.race([
        reg.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: bytes(key)}),
        new Promise((_, no) => setTimeout(() => no(new Error("subscribe timed out")), 3000)),
      ]);
      await say("/subscription", JSON.stringify(sub));
      return;
    } catch (e) {
      await say("/log", String(e));
      await new Promise(ok => setTimeout(ok, 1000));
    }
  }
}
main().catch(e => say("/log", String(e)));
</script>"""

WORKER = """
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", e => e.waitUntil(clients.claim()));
self.addEventListener("push", e => {
  e.waitUntil(fetch("/received", {method: "POST", body: e.data ? e.data.text() : ""}));
});
"""

PREFS = """
user_pref("dom.push.serverURL", "ws://127.0.0.1:%(gateway)d/");
user_pref("dom.push.testing.allowInsecureServerURL", true);
user_pref("dom.push.connection.enabled", true);
user_pref("dom.push.testing.ignorePermission", true);
user_pref("dom.push.maxQuotaPerSubscription", 1000);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.disabledForTesting", true);
user_pref("browser.aboutwelcome.enabled", false);
"""


class AppServer:
    """The application's web server: the page, its service worker, and what they report."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.posts: queue.Queue[tuple[str, str]] = queue.Queue()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/sw.js":
                    self._answer(WORKER, "text/javascript")
                else:
                    self._answer(PAGE % {"key": server.key}, "text/html")

            def do_POST(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                server.posts.put((self.path, self.rfile.read(size).decode()))
                self._answer("", "text/plain")

            def _answer(self, text: str, kind: str) -> None:
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    async def next(self, path: str, timeout: float) -> str:
        """The next body POSTed to ``path`` (logs from the page are kept for the failure)."""
        deadline = asyncio.get_running_loop().time() + timeout
        logs = []
        while asyncio.get_running_loop().time() < deadline:
            try:
                got, body = self.posts.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.05)
                continue
            if got == path:
                return body
            logs.append((got, body))
        raise AssertionError(f"nothing came to {path} in {timeout} s; the page said {logs}")

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def firefox_path() -> str:
    if FIREFOX is None:
        if os.environ.get("TIDINGS_REQUIRE_FIREFOX") == "1":
            pytest.fail("firefox-esr is not installed (apt-get install firefox-esr)")
        pytest.skip("firefox-esr is not installed")
    return FIREFOX


@pytest.fixture
def profile(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "profile"
    path.mkdir()
    yield path


@pytest.mark.timeout(180)
async def test_firefox_subscribes_and_its_service_worker_gets_the_pushes(
    tmp_path: Path, firefox_path: str, profile: Path
) -> None:
    vapid, public = vapid_keys()
    app_server = AppServer(public)
    async with running_node(tmp_path / "data") as node:
        (profile / "user.js").write_text(PREFS % {"gateway": node.gateway_port})
        browser = subprocess.Popen(
            [
                firefox_path,
                "--headless",
                "--no-remote",
                "--profile",
                str(profile),
                f"http://localhost:{app_server.port}/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "HOME": str(tmp_path), "MOZ_HEADLESS": "1"},
        )
        try:
            sub = json.loads(await app_server.next("/subscription", 90))
            assert sub["endpoint"].startswith(f"http://127.0.0.1:{node.api_port}/wpush/")
            answer = await push(sub, "Hello from the app server", vapid)
            assert answer.status_code == 201
            assert await app_server.next("/received", 30) == "Hello from the app server"
            for text in ("second", "third"):  # each comes once, in turn
                assert (await push(sub, text, vapid)).status_code == 201
                assert await app_server.next("/received", 30) == text
            uaid = next(iter(node.hub.browsers.links)) if node.hub.browsers else ""
            async with asyncio.timeout(10):  # Firefox acked them all
                while await node.store.webpush_pending(uaid):
                    await asyncio.sleep(0.05)
        finally:
            browser.terminate()
            try:
                browser.wait(timeout=15)
            except subprocess.TimeoutExpired:
                browser.kill()
                browser.wait(timeout=5)
            app_server.close()
