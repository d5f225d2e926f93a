"""The kernel's own view of a device's traffic control, read with `tc` in the test's
namespace (tests only: the agent never runs tc)."""

from __future__ import annotations

from tests.netns import NetNS

# `tc -j` prints HFSC's options as text inside its JSON ("options":{default 1388 }), so the
# kernel's view is read from tc's text output.

_RATE_UNITS = {"bit": 1, "Kbit": 1000, "Mbit": 1000**2, "Gbit": 1000**3}
_TIME_UNITS = {"us": 1, "ms": 1000, "s": 1000**2}


def _number(text: str, units: dict[str, int]) -> int:
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * units[unit])
    raise ValueError(f"no unit in {text!r}")


def qdiscs(ns: NetNS, dev: str) -> dict[str, tuple[str, str]]:
    """handle -> (kind, parent or "root") from `tc qdisc show`."""
    out = {}
    for line in ns.sh("tc", "qdisc", "show", "dev", dev).stdout.splitlines():
        words = line.split()
        parent = "root" if "root" in words else words[words.index("parent") + 1]
        out[words[2]] = (words[1], parent)
    return out


def classes(ns: NetNS, dev: str) -> dict[str, dict[str, tuple[int, int, int]]]:
    """HFSC classes: handle -> {rt|ls|ul: (m1 bit/s, d us, m2 bit/s)} from `tc class show`."""
    out = {}
    for line in ns.sh("tc", "class", "show", "dev", dev).stdout.splitlines():
        words = line.split()
        if words[:2] != ["class", "hfsc"] or "root" in words:
            continue
        curves = {}
        for i, word in enumerate(words):
            if word in ("sc", "rt", "ls", "ul") and words[i + 1] == "m1":
                curve = (_number(words[i + 2], _RATE_UNITS), _number(words[i + 4], _TIME_UNITS),
                         _number(words[i + 6], _RATE_UNITS))
                for name in ("rt", "ls") if word == "sc" else (word,):
                    curves[name] = curve
        out[words[2]] = curves
    return out


def filters(ns: NetNS, dev: str) -> dict[int, tuple[str, str, str, str]]:
    """Filters on 1389: with a flowid: pref -> (kind, protocol, flowid, match text)."""
    out = {}
    text = ns.sh("tc", "filter", "show", "dev", dev, "parent", "1389:").stdout
    entry: list[str] = []
    for line in [*text.splitlines(), "filter"]:
        if line.startswith("filter") and entry:
            # tc marks u32's flowid "*flowid" (as for the filter tc itself makes from VDSM's
            # "match u8 0 0 flowid 0x1388").
            words = [w.removeprefix("*") for w in entry[0].split()]
            if "flowid" in words:
                out[int(words[words.index("pref") + 1])] = (
                    words[words.index("pref") + 2], words[words.index("protocol") + 1],
                    words[words.index("flowid") + 1], " ".join(" ".join(entry[1:]).split()))
            entry = []
        entry.append(line)
    return out


def shaping(ns: NetNS, dev: str) -> tuple[object, ...]:
    """The kernel's view of a device's shaping, without the per-flow entries fq_codel shows
    as classes while it has packets queued."""
    return qdiscs(ns, dev), classes(ns, dev), filters(ns, dev)


def dump_all(ns: NetNS, dev: str) -> str:
    return "\n".join(ns.sh("tc", what, "show", "dev", dev).stdout
                     for what in ("qdisc", "class", "filter"))


def tc_view(ns: NetNS) -> dict[str, tuple[list[str], list[str], str]]:
    """Every device's qdiscs, classes and root filters as `tc` prints them: for "nothing
    changed". One `tc qdisc show` for all devices; classes and filters of those with a
    qdisc that can have them (neither a noqueue nor a default root can). Qdiscs and classes
    sorted (the kernel lists them by hash bucket, newest first within one, so the same tree
    made in another order lists in another order), without the per-flow classes fq_codel
    shows while packets are queued."""
    by_dev: dict[str, list[str]] = {}
    for line in ns.sh("tc", "qdisc", "show").stdout.splitlines():
        words = line.split()
        by_dev.setdefault(words[words.index("dev") + 1], []).append(line)
    out = {}
    for dev, lines in sorted(by_dev.items()):
        classful = [line for line in lines
                    if line.split()[1] not in ("noqueue", "pfifo_fast", "fq_codel", "mq")
                    or "parent" in line.split()]
        class_lines, filter_text = [], ""
        if classful:
            class_lines = sorted(
                line for line in ns.sh("tc", "class", "show", "dev", dev).stdout.splitlines()
                if not line.startswith("class fq_codel"))
            filter_text = ns.sh("tc", "filter", "show", "dev", dev).stdout
        out[dev] = (sorted(lines), class_lines, filter_text)
    return out
