"""The agent's kernel side: everything that speaks netlink, and the facts it needs.

- ``constants``: the one table of kernel numbers (message types, flags, attributes).
- ``route_socket``: the raw NETLINK_ROUTE socket (requests, dumps, pipelined writes, ACKs).
- ``batch``: link changes queued and sent in pipelined batches, in plan order.
- ``decode``: lean decoders of link, address and route messages into typed values.
- ``view`` (pure): which answers are wanted and the ``Device``s and ``Route``s they make.
- ``bond_options`` (pure): the bonding options, as sysfs spells them and netlink numbers them.
- ``backend``: the ``OpVisitor`` that applies plan ops, and ``read_state``.

This file imports nothing, so that the pure modules above can be imported without pyroute2.
"""
