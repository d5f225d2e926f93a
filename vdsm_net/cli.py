"""``vdsm-net-agent``: the daemon, and ``vdsm-net-agent restore``, the one-shot boot step.

Exit status: 0 ok; 2 configuration error (the message names the key or option and the value);
1 any other fatal error (state file unreadable, cannot listen, kernel refused the restore).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web

from vdsm_net.config import AgentConfig, ConfigError, load_config, parse_listen
from vdsm_net.errors import NetError
from vdsm_net.persist import StateFileError, StateStore
from vdsm_net.pipeline import Agent
from vdsm_net.rpc import make_handler
from vdsm_net.server import ServerError, serve

log = logging.getLogger("vdsm_net.agent")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_CONFIG = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vdsm-net-agent",
        description="Host networking agent (VDSM-compatible JSON-RPC). "
        "Without a command: run the daemon. 'restore': make the kernel match the safe config.",
    )
    p.add_argument("command", nargs="?", choices=("restore",), help="one-shot boot restore")
    p.add_argument("--config", type=Path, help="TOML file (default /etc/vdsm-net/vdsm-net.toml)")
    p.add_argument("--state-dir", type=Path, help="state directory (default /var/lib/vdsm-net)")
    p.add_argument("--socket", type=Path, help="Unix socket (default /run/vdsm-net/vdsm-net.sock)")
    p.add_argument("--listen", metavar="HOST:PORT", help="TCP listener for the engine (TLS)")
    p.add_argument("--insecure", action="store_true", help="TCP without TLS (tests only)")
    p.add_argument("--log-level", default="INFO",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="default INFO")
    return p


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    return load_config(
        args.config,
        state_dir=args.state_dir,
        socket=args.socket,
        listen=None if args.listen is None else parse_listen(args.listen, "--listen"),
        # Absent flag: keep what the file says rather than forcing False.
        insecure=True if args.insecure else None,
    )


def _restore(cfg: AgentConfig, store: StateStore) -> int:
    agent = Agent(cfg, store)
    try:
        report = agent.restore()
    finally:
        agent.close()
    log.info("restore done: %d operations, removed %s, skipped %s, reverted journal: %s",
             report.ops, report.removed or "nothing", report.skipped or "nothing",
             report.reverted_journal)
    return EXIT_OK


async def _daemon(cfg: AgentConfig, store: StateStore) -> int:
    agent = Agent(cfg, store)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        try:
            if await agent.recover():
                log.warning("reverted a change that was in flight when the agent last stopped")
            yield
        finally:
            agent.close()

    await serve(cfg, make_handler(agent), lifecycle=lifecycle)
    return EXIT_OK


def agent_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    try:
        cfg = config_from_args(args)
        store = StateStore(cfg.state_dir)
        for stale in store.remove_stale_temporaries():
            log.info("removed %s, left by a writer that did not finish", stale)
        if args.command == "restore":
            return _restore(cfg, store)
        return asyncio.run(_daemon(cfg, store))
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
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
