"""Host QoS as VDSM shapes it: the API form (model.py), the HFSC tree in kernel units
(tree.py), the pure plan from one tree to another (plan.py), the transaction's QoS steps
(change.py) and netlink (kernel.py).

Only the pure parts are exported here, so that the request parser and the capabilities
builder load without pyroute2; import ``QosKernel`` from ``vdsm_net.qos.kernel``.
"""

from vdsm_net.qos.model import Curve, HostQos
from vdsm_net.qos.plan import DeviceQos, TcOp, plan, plan_device
from vdsm_net.qos.tree import ClassCurves, KernelCurve, QosTree

__all__ = [
    "ClassCurves",
    "Curve",
    "DeviceQos",
    "HostQos",
    "KernelCurve",
    "QosTree",
    "TcOp",
    "plan",
    "plan_device",
]
