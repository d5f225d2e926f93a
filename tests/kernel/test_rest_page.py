"""The web page of ``engine-client serve`` in a real browser (headless Chromium): it asks for
a login, then shows the hosts and networks with their sync state, and a change made from the
command line appears on the open page through its event stream."""

from __future__ import annotations

import asyncio
import json

from tests.browser import chromium
from tests.cluster import DC, Cluster, running_cluster
from tests.rest_helpers import PASSWORD, USER, Served, add_user, serving


def test_page_shows_the_fleet_and_follows_a_cli_update() -> None:
    with running_cluster(("h1", "h2")) as cluster:
        add_user(cluster)
        cluster.cli("network", "add", "red", "--dc", DC)
        for host in ("h1", "h2"):
            cluster.cli("network", "attach", "red", host, "--nic", "eth1")
        with serving(cluster, tls=False, port=18090) as served:
            served.ns.run(lambda: asyncio.run(_browse(cluster, served)))


async def _browse(cluster: Cluster, served: Served) -> None:
    async with chromium(cluster.engine.name, served.url + "/") as page:
        await page.wait_for("document.querySelector('#login') && "
                            "!document.querySelector('#login').hidden")
        assert await page.js("document.querySelector('#fleet').hidden") is True
        # A wrong password is refused on the page.
        await page.js(f"document.querySelector('#user').value = {json.dumps(USER)}; "
                      "document.querySelector('#password').value = 'wrong password!'; "
                      "document.querySelector('#login-button').click(); true")
        await page.wait_for("document.querySelector('#login-error').textContent"
                            ".includes('Cannot authenticate')")
        await page.js(f"document.querySelector('#password').value = {json.dumps(PASSWORD)}; "
                      "document.querySelector('#login-button').click(); true")
        await page.wait_for("document.querySelectorAll('#hosts tbody tr').length === 2")
        hosts = await page.js("[...document.querySelectorAll('#hosts tbody tr')]"
                              ".map(r => r.cells[0].textContent)")
        assert hosts == ["h1", "h2"]
        row = "document.querySelector('#networks tr[data-network=red]')"
        await page.wait_for(f"{row} && {row}.cells[3].textContent === '1500'")
        assert "h1 (nic eth1): in sync" in await page.js(f"{row}.cells[6].innerText")
        await page.wait_for("document.querySelector('#live').textContent === '(live)'")
        # A change from the command line, while the page is open.
        proc = await asyncio.to_thread(cluster.run_cli, "network", "update", "red",
                                       "--mtu", "1400")
        assert proc.returncode == 0, proc.stderr
        await page.wait_for(f"{row}.cells[3].textContent === '1400'")
        await page.wait_for("[...document.querySelectorAll('#events li')]"
                            ".some(li => li.textContent.includes('network red were updated on "
                            "host h2'))")
        shot = await page.send("Page.captureScreenshot", format="png")
        assert shot["data"]
