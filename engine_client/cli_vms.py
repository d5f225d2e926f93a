"""``engine-client vm add|remove|list`` (docs/engine-cli.md): the VMs and templates that use
logical networks, what validation reads (a network a VM uses is not removed)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from engine_client.models import Vm
from engine_client.operations import EXIT_OK, Ctx, table

Handler = Callable[[Ctx, argparse.Namespace], int]
Sub = Callable[[Any, str, Handler, str], argparse.ArgumentParser]
Group = Callable[[str, str], Any]


def cmd_vm_add(ctx: Ctx, a: argparse.Namespace) -> int:
    vm = ctx.store.add_vm(
        Vm(a.name, running=a.running, template=a.template, networks=tuple(a.network))
    )
    ctx.print_json(asdict(vm)) if ctx.json else ctx.print(f"vm {vm.name} added")
    return EXIT_OK


def cmd_vm_remove(ctx: Ctx, a: argparse.Namespace) -> int:
    ctx.store.remove_vm(a.name)
    ctx.print_json({"removed": a.name}) if ctx.json else ctx.print(f"vm {a.name} removed")
    return EXIT_OK


def cmd_vm_list(ctx: Ctx, a: argparse.Namespace) -> int:
    vms = ctx.store.list_vms()
    if ctx.json:
        ctx.print_json([asdict(v) for v in vms])
    else:
        table(
            ctx,
            ["name", "running", "template", "networks"],
            [[v.name, v.running, v.template, ", ".join(v.networks)] for v in vms],
        )
    return EXIT_OK


def add_commands(group: Group, sub: Sub) -> None:
    """``vm``."""
    vm = group("vm", "VMs and templates (what validation reads)")
    p = sub(vm, "add", cmd_vm_add, "add a VM or template")
    p.add_argument("name")
    p.add_argument("--network", action="append", required=True, help="repeatable")
    p.add_argument("--running", action="store_true",
                   help="the VM is running (its networks cannot be changed under it)")
    p.add_argument("--template", action="store_true",
                   help="a template, not a VM (it uses the networks all the same)")
    p = sub(vm, "remove", cmd_vm_remove, "remove a VM or template")
    p.add_argument("name")
    sub(vm, "list", cmd_vm_list, "list VMs and templates")
