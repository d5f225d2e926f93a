"""``vdsm-net-agent``: the daemon, and ``vdsm-net-agent restore``, the one-shot boot step.

Exit status: 0 ok; 2 configuration error (the message names the key or option and the value),
or restore refused (a missing state directory, or no safe config while the agent's devices
exist; ``--force`` overrides); 3 the state directory is in use by another daemon or restore
(the message names its pid); 1 any other fatal error (state file unreadable, cannot listen,
kernel refused the restore).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from vdsm_net import __version__, logsetup
from vdsm_net.authz import ClientPolicy
from vdsm_net.config import (
    LOG_LEVELS,
    RELOADABLE,
    AgentConfig,
    ConfigError,
    load_config,
    parse_listen,
)
from vdsm_net.errors import NetError
from vdsm_net.persist import StateFileError, StateStore
from vdsm_net.pipeline import Agent, RestoreRefused
from vdsm_net.rpc import make_handler
from vdsm_net.server import ServerError, serve
from vdsm_net.statelock import StateLock, StateLockError

log = logging.getLogger("vdsm_net.agent")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vdsm-net-agent",
        description="Host networking agent (VDSM-compatible JSON-RPC). "
        "Without a command: run the daemon (SIGTERM/SIGINT stop it, SIGHUP re-reads the "
        "config file). 'restore': make the kernel match the safe config.",
    )
    p.add_argument("command", nargs="?", choices=("restore",), help="one-shot boot restore")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", type=Path, help="TOML file (default /etc/vdsm-net/vdsm-net.toml)")
    p.add_argument("--state-dir", type=Path, help="state directory (default /var/lib/vdsm-net)")
    p.add_argument("--socket", type=Path, help="Unix socket (default /run/vdsm-net/vdsm-net.sock)")
    p.add_argument("--listen", metavar="HOST:PORT", help="TCP listener for the engine (TLS)")
    p.add_argument("--insecure", action="store_true", help="TCP without TLS (tests only)")
    p.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS,
                   help="default: [log] level of the config file, else INFO")
    p.add_argument("--force", action="store_true",
                   help="restore only: proceed even with a missing state directory or no safe "
                   "config while the agent's devices exist (removes them)")
    return p


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    return load_config(
        args.config,
        state_dir=args.state_dir,
        socket=args.socket,
        listen=None if args.listen is None else parse_listen(args.listen, "--listen"),
        # Absent flag: keep what the file says rather than forcing False.
        insecure=True if args.insecure else None,
        log_level=args.log_level,
    )


def _lock(cfg: AgentConfig) -> StateLock:
    try:
        cfg.state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        return StateLock.acquire(cfg.state_dir)
    except OSError as exc:
        raise StateFileError(
            f"state directory {str(cfg.state_dir)!r}: cannot lock it: {exc.strerror} (under "
            "systemd the units make only /var/lib/vdsm-net writable: see docs/operations.md)"
        ) from None


def _restore(cfg: AgentConfig, force: bool) -> int:
    # A missing directory is refused before anything is made in it (unless --force).
    lock = _lock(cfg) if force or cfg.state_dir.is_dir() else None
    try:
        store = StateStore(cfg.state_dir)
        _remove_stale(store, lock)
        agent = Agent(cfg, store)
        try:
            report = agent.restore(force=force)
        finally:
            agent.close()
    finally:
        if lock is not None:
            lock.release()
    for line in report.skipped:
        log.warning("restore skipped %s", line)
    return EXIT_OK


def _remove_stale(store: StateStore, lock: StateLock | None) -> None:
    if lock is None:
        return  # nobody owns the directory: leave it alone
    for stale in store.remove_stale_temporaries():
        log.info("removed %s, left by a writer that did not finish", stale)


class Reloader:
    """SIGHUP: re-read the config file, apply what can change at run time, say what changed,
    keep the old config when the new one is invalid. Never stops the daemon."""

    def __init__(self, args: argparse.Namespace, cfg: AgentConfig, agent: Agent,
                 policy: ClientPolicy) -> None:
        self.args = args
        self.cfg = cfg
        self.agent = agent
        self.policy = policy
        self._busy: asyncio.Task[None] | None = None

    def __call__(self) -> None:
        if self._busy is not None and not self._busy.done():
            log.info("SIGHUP: a reload is already running")
            return
        self._busy = asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> None:
        where = str(self.args.config) if self.args.config else "the default config file"
        try:
            new = await asyncio.to_thread(config_from_args, self.args)
        except ConfigError as exc:
            log.error("SIGHUP: keeping the running configuration, %s is invalid: %s", where, exc)
            return
        except Exception:  # never let a reload take the daemon down
            log.exception("SIGHUP: keeping the running configuration, reading %s failed", where)
            return
        old = self.cfg
        applied = [f"{name} {getattr(old, name)!r} -> {getattr(new, name)!r}"
                   for name in RELOADABLE if getattr(old, name) != getattr(new, name)]
        pending = sorted(name for name in vars(old) if name not in RELOADABLE
                         and getattr(old, name) != getattr(new, name))
        logsetup.set_level(new.log_level)
        self.policy.allowed = frozenset(new.allowed_clients)
        # Only what may change now: the rest stays as the daemon started with it.
        self.cfg = replace(old, **{name: getattr(new, name) for name in RELOADABLE})
        self.agent.reconfigure(self.cfg)
        log.info("SIGHUP: reloaded %s: %s", where, "; ".join(applied) or "nothing changed")
        if pending:
            log.warning("SIGHUP: changed in the file but applied only at restart: %s",
                        ", ".join(pending))


async def _daemon(args: argparse.Namespace, cfg: AgentConfig, store: StateStore) -> int:
    agent = Agent(cfg, store)
    policy = ClientPolicy(cfg.allowed_clients)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        try:
            if await agent.recover():
                log.warning("reverted a change that was in flight when the agent last stopped")
            await _warn_about_network_managers(agent)
            await agent.start_clients()
            yield
        finally:
            await agent.stop_clients()
            agent.close()

    await serve(cfg, make_handler(agent), lifecycle=lifecycle, policy=policy,
                on_stop=agent.stopping, on_reload=Reloader(args, cfg, agent, policy))
    return EXIT_OK


async def _warn_about_network_managers(agent: Agent) -> None:
    for line in await agent.manager_warnings():
        log.warning("%s", line)


def agent_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logsetup.configure(args.log_level or "INFO")
    try:
        cfg = config_from_args(args)
        logsetup.set_level(cfg.log_level)
        if args.command == "restore":
            return _restore(cfg, args.force)
        if args.force:
            raise ConfigError("--force: applies to restore only")
        lock = _lock(cfg)
        try:
            store = StateStore(cfg.state_dir)
            _remove_stale(store, lock)
            return asyncio.run(_daemon(args, cfg, store))
        finally:
            lock.release()
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    except RestoreRefused as exc:
        log.error("restore refused: %s", exc)
        return EXIT_CONFIG
    except StateLockError as exc:
        log.error("%s", exc)
        return EXIT_LOCKED
    except (StateFileError, ServerError) as exc:
        log.error("%s", exc)
        return EXIT_FATAL
    except NetError as exc:
        log.error("error %d: %s", exc.code, exc.message)
        return EXIT_FATAL
    except OSError as exc:
        log.error("%s", exc)
        return EXIT_FATAL


if __name__ == "__main__":
    sys.exit(agent_main())
