"""Run the kernel tests that this kernel cannot host inside User-Mode Linux, from the same pytest.

A test says which device kinds it needs with ``@pytest.mark.needs("vlan", "bond")``. After
collection the plugin probes, once, which of the needed kinds the running kernel can create (in a
scratch network namespace). The tests that need a missing kind are *delegated*: one UML guest is
booted for the whole session, with the host's file system as its root, and runs ONE inner pytest
over all delegated node ids (one interpreter: reading Python from hostfs is slow). The guest is
started when the test loop starts, so it runs while the host runs the other tests.

Each delegated test is then reported in the outer session under its own node id with the inner
outcome; its fixtures never run on the host (they would fail there for lack of the device kind).
An inner skip is a failure: kernel tests must not skip. A guest that cannot boot, a missing
``linux.uml`` or module, or a guest that runs past the timeout fails every delegated test with a
message that says what to install or where the console log is.

Environment:
    VDSM_NET_UML=auto|always|never   auto (default): delegate what the kernel lacks; always: every
                                     kernel test goes to UML (tests the plugin); never: none.
                                     Tests marked ``no_uml`` (the plugin's own) never go.
    VDSM_NET_UML_TIMEOUT=SECONDS     limit for the whole guest run (default 2400).
    VDSM_NET_UML_REPEAT=N            the guest runs the inner pytest N times in a row (default 1),
                                     one boot; a test passes only if it passed in every run, a
                                     failure names its run, the summary counts failed runs.
    VDSM_NET_IN_UML=1                set for the inner pytest, which then delegates nothing.
    VDSM_NET_UML_RESULTS=PATH        the inner pytest appends one JSON line per test there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pytest
from _pytest.reports import CollectReport, TestReport

from tests.netns import kernel_has_cached

ENV_MODE = "VDSM_NET_UML"
ENV_TIMEOUT = "VDSM_NET_UML_TIMEOUT"
ENV_IN_UML = "VDSM_NET_IN_UML"
ENV_RESULTS = "VDSM_NET_UML_RESULTS"
ENV_REPEAT = "VDSM_NET_UML_REPEAT"

INSTALL_HINT = "apt-get install user-mode-linux kmod"
DEFAULT_TIMEOUT = 40 * 60.0
UML_BINARY = "linux.uml"
UML_MODULES = Path("/usr/lib/uml/modules")

# Device kind (as in `ip link add type KIND` and the needs marker) -> kernel module in the guest.
KIND_MODULES = {
    "vlan": "8021q", "bond": "bonding", "dummy": "dummy", "bridge": "bridge", "veth": "veth",
    "macvlan": "macvlan", "ipvlan": "ipvlan", "vrf": "vrf", "vxlan": "vxlan",
    "hfsc": "sch_hfsc",
}
# Kinds that need more than their own module: host QoS's HFSC tree also uses fq_codel leaves,
# the ingress qdisc and the u32/basic(meta vlan) filters VDSM builds.
KIND_EXTRA_MODULES = {
    "hfsc": ("sch_fq_codel", "sch_ingress", "cls_u32", "cls_basic", "em_meta"),
}
# Loaded in every guest: tests use bridges and veth NICs without asking for them.
BASE_MODULES = ("8021q", "bridge", "bonding", "dummy", "veth")

Outcome = Literal["passed", "failed", "skipped", "xfailed", "xpassed"]


def needed_kinds(item: pytest.Item) -> set[str]:
    kinds: set[str] = set()
    for mark in item.iter_markers("needs"):
        kinds.update(str(k) for k in mark.args)
    return kinds


def is_kernel_test(item: pytest.Item) -> bool:
    return item.get_closest_marker("kernel") is not None


def configure(config: pytest.Config) -> None:
    """Called from tests/conftest.py: the outer plugin on the host, the recorder in the guest."""
    if os.environ.get(ENV_IN_UML) == "1":
        results = os.environ.get(ENV_RESULTS)
        if results:
            config.pluginmanager.register(ResultRecorder(Path(results)), "vdsm-net-uml-recorder")
        return
    mode = os.environ.get(ENV_MODE, "auto")
    if mode not in ("auto", "always", "never"):
        raise pytest.UsageError(f"{ENV_MODE}: expected auto, always or never, got {mode!r}")
    config.pluginmanager.register(UmlPlugin(config, mode), "vdsm-net-uml")


# --- inner side: record results where the host can read them ------------------------------------


@dataclass
class _Pending:
    outcome: Outcome = "passed"
    longrepr: list[str] = field(default_factory=list)
    duration: float = 0.0
    sections: list[tuple[str, str]] = field(default_factory=list)
    reason: str = ""
    crash: str = ""


class ResultRecorder:
    """Inner-pytest plugin: one JSON line per finished test, fsynced so the host sees it at once
    (hostfs writes through the guest's page cache)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: dict[str, _Pending] = {}

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def pytest_sessionstart(self) -> None:
        self._write({"event": "sessionstart", "time": time.time()})

    def pytest_collectreport(self, report: CollectReport) -> None:
        if report.failed:
            self._write({"event": "collecterror", "nodeid": report.nodeid,
                         "longrepr": str(report.longrepr)})

    def pytest_runtest_logreport(self, report: TestReport) -> None:
        p = self.pending.setdefault(report.nodeid, _Pending())
        p.duration += report.duration
        p.sections = list(report.sections)
        wasxfail = getattr(report, "wasxfail", None)
        if report.failed:
            p.outcome = "failed"
            p.longrepr.append(f"[{report.when}]\n{report.longreprtext}")
            crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", None)
            if not p.crash:
                p.crash = str(crash) if crash else report.longreprtext.strip().split("\n")[-1]
        elif p.outcome == "failed":
            pass
        elif report.skipped and wasxfail is not None:
            p.outcome, p.reason = "xfailed", str(wasxfail)
        elif report.skipped:
            longrepr = report.longrepr
            p.outcome = "skipped"
            p.reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
        elif report.when == "call" and wasxfail is not None:
            p.outcome, p.reason = "xpassed", str(wasxfail)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        p = self.pending.pop(nodeid, _Pending())
        self._write({"event": "test", "nodeid": nodeid, "outcome": p.outcome,
                     "longrepr": "\n".join(p.longrepr), "duration": p.duration,
                     "sections": p.sections, "reason": p.reason, "crash": p.crash})

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self._write({"event": "sessionfinish", "exitstatus": int(exitstatus), "time": time.time()})


# --- host side: boot the guest, read results back -----------------------------------------------


@dataclass(frozen=True)
class InnerResult:
    outcome: Outcome
    longrepr: str
    duration: float
    sections: list[tuple[str, str]]
    reason: str
    crash: str


def _repeat() -> int:
    text = os.environ.get(ENV_REPEAT, "1")
    try:
        repeat = int(text)
    except ValueError:
        repeat = 0
    if repeat < 1:
        raise pytest.UsageError(f"{ENV_REPEAT}: expected a whole number >= 1, got {text!r}")
    return repeat


def _merge(first: InnerResult, later: InnerResult) -> InnerResult:
    """One test's outcome over repeated runs: the first failure wins."""
    if first.outcome in ("failed", "skipped") or later.outcome not in ("failed", "skipped"):
        return replace(first, duration=first.duration + later.duration)
    return replace(later, duration=first.duration + later.duration)


class UmlError(Exception):
    """The guest could not run the tests; the message says why and what to do."""


def _kernel_version() -> str:
    versions = sorted(p.name for p in UML_MODULES.iterdir()) if UML_MODULES.is_dir() else []
    if not versions:
        raise UmlError(f"no UML kernel modules under {UML_MODULES}: {INSTALL_HINT}")
    return versions[-1]


def _shell_env(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items()
           if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)
           and not k.startswith("PYTEST_") and k != ENV_MODE}
    # `ip` and `modprobe` live in sbin, which a non-login PATH may lack.
    env["PATH"] = ":".join([env.get("PATH", ""), "/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"])
    env.update(extra)
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()))


class UmlRun:
    """One guest boot running one inner pytest over the delegated node ids."""

    def __init__(self, config: pytest.Config, nodeids: list[str], kinds: set[str]) -> None:
        self.config = config
        self.nodeids = nodeids
        self.kinds = kinds
        self.timeout = float(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT))
        self.workdir = Path(tempfile.mkdtemp(prefix="vdsm-net-uml-"))
        self.console = self.workdir / "console.log"
        self.results_path = self.workdir / "results.jsonl"
        self.results: dict[str, InnerResult] = {}
        self.repeat = _repeat()
        self.runs_of: dict[str, int] = {}  # nodeid -> runs reported
        self.failed_runs: dict[int, list[str]] = {}  # run -> nodeids that failed in it
        self.sessions_finished = 0
        self.collect_errors: list[str] = []
        self.exitstatus: int | None = None
        self.sessionstart: float | None = None
        self.sessionfinish: float | None = None
        self.error: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.finished: float | None = None
        self._offset = 0

    # The guest's PID 1. The host's / is the guest's root, so every host path is visible, but
    # /run, /dev/shm (tmpfs) and /proc, /sys are the guest's own: `ip netns add` in the guest
    # never touches the host's /run/netns. Writes to the host go to files under workdir.
    def _init_script(self) -> str:
        kver = _kernel_version()
        modules = sorted(set(BASE_MODULES) | {KIND_MODULES[k] for k in self.kinds}
                         | {m for k in self.kinds for m in KIND_EXTRA_MODULES.get(k, ())})
        work = shlex.quote(str(self.workdir))
        inner = [sys.executable, "-m", "pytest", "-v", "--color=no", "-p", "no:cacheprovider",
                 "--rootdir", str(self.config.rootpath),
                 "--basetemp", str(self.workdir / "basetemp"),
                 f"--tb={self.config.option.tbstyle}",
                 f"--capture={self.config.option.capture}"]
        if self.config.inipath is not None:
            inner += ["-c", str(self.config.inipath)]
        inner += ["--", *self.nodeids]
        env = _shell_env({ENV_IN_UML: "1", ENV_RESULTS: str(self.results_path)})
        # Every run goes on after a failed one (the point of repeating is the count); the exit
        # status is the last failed run's.
        return f"""#!/bin/sh
fail() {{ echo "$*" > {work}/boot-error; echo "UML init: $*"; poweroff -f; }}
mount -t proc proc /proc || fail "mount proc failed"
mount -t sysfs sys /sys || fail "mount sysfs failed"
grep -q ' /dev devtmpfs' /proc/mounts || mount -t devtmpfs devtmpfs /dev || fail "no devtmpfs"
mount -t tmpfs tmpfs /run || fail "mount tmpfs on /run failed"
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm || fail "mount tmpfs on /dev/shm failed"
mkdir -p /run/mods/lib/modules /run/netns
ln -s {UML_MODULES}/{kver} /run/mods/lib/modules/{kver}
command -v modprobe >/dev/null || fail "modprobe not found: {INSTALL_HINT}"
for m in {" ".join(modules)}; do
    modprobe -d /run/mods "$m" || fail "modprobe $m failed: {INSTALL_HINT}"
done
ip link set lo up
{env}
cd {shlex.quote(str(self.config.rootpath))} || fail "no rootdir"
status=0
run=1
while [ "$run" -le {self.repeat} ]; do
    {shlex.join(inner)}
    rc=$?
    [ "$rc" -ne 0 ] && status=$rc
    run=$((run + 1))
done
echo $status > {work}/exitstatus
poweroff -f
"""

    def start(self) -> None:
        self.started = time.monotonic()
        binary = shutil.which(UML_BINARY)
        if binary is None:
            self.error = f"{UML_BINARY} not found: {INSTALL_HINT}"
            return
        try:
            script = self._init_script()
        except UmlError as e:
            self.error = str(e)
            return
        init = self.workdir / "init.sh"
        init.write_text(script)
        init.chmod(0o755)
        # uml_dir: the guest's pid file and mconsole socket stay out of ~/.uml (a killed guest
        # leaves them behind).
        argv = [binary, "mem=2G", "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "rw",
                f"init={init}", "con=null", "con0=null,fd:1", f"uml_dir={self.workdir}"]
        with self.console.open("wb") as log:
            # A session of its own: UML forks one host process per guest address space, and
            # a timeout must kill them all.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def _read_new(self) -> None:
        if not self.results_path.exists():
            return
        with self.results_path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        for line in data[:end].splitlines():
            self._record(json.loads(line))

    def _record(self, rec: dict[str, Any]) -> None:
        event = rec["event"]
        if event == "test":
            nodeid = rec["nodeid"]
            result = InnerResult(
                outcome=rec["outcome"], longrepr=rec["longrepr"], duration=rec["duration"],
                sections=[(str(t), str(c)) for t, c in rec["sections"]], reason=rec["reason"],
                crash=rec["crash"])
            run = self.runs_of.get(nodeid, 0) + 1
            self.runs_of[nodeid] = run
            if result.outcome in ("failed", "skipped"):
                self.failed_runs.setdefault(run, []).append(nodeid)
            if self.repeat > 1 and result.outcome in ("failed", "skipped"):
                result = replace(result, crash=f"run {run} of {self.repeat}: {result.crash}")
            known = self.results.get(nodeid)
            self.results[nodeid] = result if known is None else _merge(known, result)
        elif event == "collecterror":
            self.collect_errors.append(f"{rec['nodeid']}:\n{rec['longrepr']}")
        elif event == "sessionstart" and self.sessionstart is None:  # the first run's
            self.sessionstart = rec["time"]
        elif event == "sessionfinish":
            self.sessionfinish = rec["time"]
            self.sessions_finished += 1

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def _finish(self) -> None:
        if self.finished is not None:
            return
        self.finished = time.monotonic()
        self._read_new()
        status = self.workdir / "exitstatus"
        if status.exists():
            self.exitstatus = int(status.read_text().strip() or -1)
        boot_error = self.workdir / "boot-error"
        if self.error is None and boot_error.exists():
            self.error = f"UML guest failed to boot: {boot_error.read_text().strip()}"

    def wait_for(self, nodeid: str) -> InnerResult | None:
        """The inner result of one test, once the guest has reported it (or has ended)."""
        while self.finished is None and self.runs_of.get(nodeid, 0) < self.repeat:
            self._read_new()
            if self.runs_of.get(nodeid, 0) >= self.repeat:
                break
            if self.proc is None or self.proc.poll() is not None:
                self._finish()
            elif time.monotonic() - self.started > self.timeout:
                self._kill()
                self.error = (f"UML run killed after the {self.timeout:.0f} s timeout "
                              f"({ENV_TIMEOUT}); console log: {self.console}")
                self._finish()
            else:
                time.sleep(0.2)
        return self.results.get(nodeid)

    def stop(self) -> None:
        self._read_new()
        over = self.sessions_finished >= self.repeat
        if self.proc is not None and self.proc.poll() is None and over:
            # The inner session is over and the guest is powering off: let it write its exit
            # status. Otherwise (-x, ^C in the outer session) kill it at once.
            remaining = self.timeout - (time.monotonic() - self.started)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=max(1.0, min(remaining, 60.0)))
        self._kill()
        self._finish()

    def why_missing(self) -> str:
        lines = [f"[UML] {self.error or 'no result for this test'}"]
        if self.exitstatus is not None:
            lines.append(f"inner pytest exit status: {self.exitstatus}")
        elif self.error is None:
            lines.append("the guest ended without an inner pytest exit status (crash or boot "
                         f"failure? is `{INSTALL_HINT}` done?)")
        lines += [f"inner collection error in {e}" for e in self.collect_errors]
        lines.append(f"console log: {self.console}")
        tail = _tail(self.console, 40)
        if tail:
            lines += ["--- console log tail ---", tail]
        return "\n".join(lines)


def _tail(path: Path, n: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-n:])


# --- host side: the pytest plugin ---------------------------------------------------------------


class UmlPlugin:
    def __init__(self, config: pytest.Config, mode: str) -> None:
        self.config = config
        self.mode = mode
        self.delegated: dict[str, pytest.Item] = {}
        self.kinds: set[str] = set()
        self.missing: set[str] = set()
        self.run: UmlRun | None = None

    @pytest.hookimpl(trylast=True)  # after -k/-m deselection: probe and boot only for what runs
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        kernel_items = [i for i in items
                        if is_kernel_test(i) and i.get_closest_marker("no_uml") is None]
        for item in kernel_items:
            unknown = needed_kinds(item) - set(KIND_MODULES)
            if unknown:
                raise pytest.UsageError(
                    f"{item.nodeid}: needs: unknown device kind(s) {sorted(unknown)}; "
                    f"known: {sorted(KIND_MODULES)}")
        if self.mode == "never":
            return
        if self.mode == "always":
            chosen = kernel_items
        else:
            wanted = set().union(*(needed_kinds(i) for i in kernel_items))
            # Probing needs root (a scratch netns); without root the kernel tests fail anyway.
            self.missing = {k for k in wanted if os.geteuid() == 0 and not kernel_has_cached(k)}
            chosen = [i for i in kernel_items if needed_kinds(i) & self.missing]
        self.delegated = {i.nodeid: i for i in chosen}
        self.kinds = set().union(*(needed_kinds(i) for i in chosen))
        # Delegated tests go last. They bypass the normal setup/teardown, so a host test after
        # one would find the fixtures of the host test before it still set up ("previous item
        # was not torn down properly"); last, they also wait for the guest as late as possible.
        items[:] = [i for i in items if i.nodeid not in self.delegated] + chosen

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        if not self.delegated or session.config.option.collectonly:
            return
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            return  # the main loop stops on collection errors; do not boot for nothing
        self.run = UmlRun(self.config, list(self.delegated), self.kinds)
        self.run.start()
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            why = (f"kernel lacks {', '.join(sorted(self.missing))}" if self.missing
                   else f"{ENV_MODE}={self.mode}")
            reporter.write_line(f"uml: {len(self.delegated)} test(s) run in User-Mode Linux "
                                f"({why}); console log: {self.run.console}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> bool | None:
        if item.nodeid not in self.delegated or self.run is None:
            return None
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for report in self._reports(item, self.run.wait_for(item.nodeid)):
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _reports(self, item: pytest.Item, result: InnerResult | None) -> Iterator[TestReport]:
        assert self.run is not None
        now = time.time()
        sections: list[tuple[str, str]] = []
        duration = 0.0
        extra: dict[str, Any] = {}
        longrepr: str | tuple[str, int, str] | None = None
        outcome: Literal["passed", "failed", "skipped"]
        if result is None:
            outcome, longrepr = "failed", self.run.why_missing()
        else:
            sections, duration = result.sections, result.duration
            if result.outcome in ("passed", "xpassed"):
                outcome = "passed"
                if result.outcome == "xpassed":
                    extra["wasxfail"] = result.reason
            elif result.outcome == "xfailed":
                path, lineno, _ = item.location
                outcome, longrepr = "skipped", (path, lineno or 0, result.reason)
                extra["wasxfail"] = result.reason
            elif result.outcome == "skipped":
                outcome, longrepr = "failed", (
                    f"[UML] kernel tests must not skip; skipped: {result.reason}")
            else:
                outcome, longrepr = "failed", (
                    f"[UML] {result.crash}\n\n{result.longrepr}")
        keywords: dict[str, Literal[1]] = {k: 1 for k in item.keywords}
        common: dict[str, Any] = {"nodeid": item.nodeid, "location": item.location,
                                  "keywords": keywords, "user_properties": item.user_properties}
        yield TestReport(**common, outcome="passed", longrepr=None, when="setup",
                         start=now, stop=now)
        yield TestReport(**common, outcome=outcome, longrepr=longrepr, when="call",
                         sections=sections, duration=duration, start=now, stop=now, **extra)
        yield TestReport(**common, outcome="passed", longrepr=None, when="teardown",
                         start=now, stop=now)

    def pytest_sessionfinish(self) -> None:
        if self.run is not None:
            self.run.stop()  # -x or ^C may leave the guest running

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        run = self.run
        if run is None or run.finished is None:
            return
        terminalreporter.section("User-Mode Linux")
        wall = run.finished - run.started
        lines = [f"{len(run.nodeids)} delegated test(s), {len(run.results)} reported; "
                 f"guest wall time {wall:.1f} s"]
        if run.sessionstart is not None and run.sessionfinish is not None:
            inner = run.sessionfinish - run.sessionstart
            lines.append(f"inner pytest session {inner:.1f} s (collection included); guest boot "
                         f"and interpreter start ~{wall - inner:.1f} s")
        if run.repeat > 1:
            failed = sorted(run.failed_runs)
            lines.append(f"{run.repeat} runs ({ENV_REPEAT}), {run.sessions_finished} finished; "
                         f"{len(failed)} with a failure" + (f": runs {failed}" if failed else ""))
            for k in failed:
                lines.append(f"  run {k}: {', '.join(run.failed_runs[k])}")
        if run.exitstatus is not None:
            lines.append(f"inner pytest exit status {run.exitstatus}")
        if run.error:
            lines.append(run.error)
        lines.append(f"console log: {run.console}")
        for line in lines:
            terminalreporter.write_line(line)

