"""Host QoS as VDSM shapes it: the API form (model.py), the HFSC tree in kernel units
(tree.py), the pure plan from one tree to another (plan.py) and netlink (kernel.py)."""

from vdsm_net.qos.kernel import QosKernel
from vdsm_net.qos.model import Curve, HostQos
from vdsm_net.qos.plan import DeviceQos, TcOp, plan, plan_device
from vdsm_net.qos.tree import ClassCurves, KernelCurve, QosTree

__all__ = [
    "ClassCurves",
    "Curve",
    "DeviceQos",
    "HostQos",
    "KernelCurve",
    "QosKernel",
    "QosTree",
    "TcOp",
    "plan",
    "plan_device",
]
