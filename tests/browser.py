"""Headless Chromium driven through the DevTools protocol (aiohttp's websocket client), for
tests of the web page: what a person's browser shows."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run")


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> Any:
        ident = next(self._ids)
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            msg = json.loads((await self._ws.receive(timeout=60)).data)
            if msg.get("id") == ident:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result")

    async def navigate(self, url: str) -> None:
        """Loads ``url`` and returns once its load event fired (evaluating during a
        navigation fails with "Inspected target navigated or closed")."""
        await self.send("Page.enable")
        ident = next(self._ids)
        await self._ws.send_json({"id": ident, "method": "Page.navigate", "params": {"url": url}})
        while True:
            msg = json.loads((await self._ws.receive(timeout=60)).data)
            if msg.get("id") == ident and "error" in msg:
                raise AssertionError(f"Page.navigate {url}: {msg['error']}")
            if msg.get("method") == "Page.loadEventFired":
                return

    async def js(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                                 returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, tries: int = 400) -> Any:
        """Polls until ``expression`` is truthy (every 50 ms; a bound, not a timing claim)."""
        for _ in range(tries):
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"never true: {expression}; body: "
                             f"{await self.js('document.body.innerText')}")


@asynccontextmanager
async def chromium(netns: str, url: str) -> AsyncIterator[Page]:
    """Chromium (in network namespace ``netns``) showing ``url``; the caller's thread must
    be in the same namespace to reach its DevTools port."""
    with tempfile.TemporaryDirectory(prefix="vdsm-net-chromium-") as profile:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        try:
            assert proc.stderr is not None
            port = None
            for line in proc.stderr:
                m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                if m:
                    port = int(m.group(1))
                    break
            assert port is not None, "chromium printed no DevTools address"
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    targets = await resp.json()
                target = next(t for t in targets if t["type"] == "page")
                async with session.ws_connect(target["webSocketDebuggerUrl"],
                                              max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.navigate(url)
                    yield page
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """Ends Chromium and its helper processes (its own process group, started above): its
    renderers can still write into the profile after the browser process exits."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for _ in range(200):
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
