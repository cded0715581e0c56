"""The only code that talks to a Proxmox VE API (through proxmoxer).

``PveClient.connect(settings)`` -> client; ``client.fetch_snapshot()`` -> ``ClusterSnapshot``
(2 requests); ``client.refresh_slow_data()`` when ``client.slow_data_due``. Actions and task
tracking live in ``pve.actions`` and ``pve.tasks``.
"""

from pvetop.pve.client import PveClient, guest_path

__all__ = ["PveClient", "guest_path"]
