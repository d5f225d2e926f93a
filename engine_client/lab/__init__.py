"""``vdsm-net-lab``: N hosts on one machine for trying the whole project (docs/lab.md).

Each host is a network namespace with simulated NICs and a real ``vdsm-net-agent`` listening
with mutual TLS on a veth link to the root namespace; the engine client's store in the lab's
directory has them registered. ``layout`` names and records everything the lab makes,
``kernel`` makes and removes it, ``agents`` starts and stops the agents, ``lab`` puts the
three together (up, status, down) and ``cli`` is the command line.
"""
