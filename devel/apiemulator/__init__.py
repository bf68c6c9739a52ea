"""A Kubernetes API emulator for kubemeta's tests and demo.

Speaks the parts of the real API kubemeta uses, over real HTTPS with its own
CA: Pod and Namespace objects, lists and watch streams (bookmarks, 410 Gone,
cut streams), metav1.Status errors, resourceVersion, bearer tokens and client
certificates, and faults switchable while it runs.
"""

from apiemulator.objects import make_namespace, make_node, make_pod
from apiemulator.server import ApiEmulator

__all__ = ["ApiEmulator", "make_namespace", "make_node", "make_pod"]
