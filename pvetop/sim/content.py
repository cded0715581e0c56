"""``GET /nodes/{node}/storage/{storage}/content``: the guest volumes a storage holds.

PVE (API2/Storage/Content.pm) lists one entry per volume with ``volid``, ``vmid``, ``content``
(``images`` for VM disks, ``rootdir`` for container volumes), ``format`` and ``size`` in bytes.
A local storage shows the volumes of the node asked; a shared one, every node's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pvetop.sim.errors import PveApiError

if TYPE_CHECKING:
    from pvetop.sim.cluster import SimCluster


def storage_content(cluster: SimCluster, node: str, storage: str, content: str | None) -> list[dict]:
    cluster.reachable_node(node)
    store = cluster.storage_by_id.get(storage)
    if store is not None and not store.on_node(node):
        store = None
    if store is None:
        raise PveApiError(500, f"storage '{storage}' does not exist")
    volumes = []
    for guest in sorted(cluster.guests.values(), key=lambda g: g.vmid):
        if not store.shared and guest.node != node:
            continue
        kind = "images" if guest.type == "qemu" else "rootdir"
        if content and kind not in content.split(","):
            continue
        for index, disk in enumerate(guest.disks):
            if disk.storage == storage:
                volumes.append(
                    {
                        "volid": disk.volid(guest.vmid, index),
                        "vmid": guest.vmid,
                        "content": kind,
                        "format": "raw",
                        "size": disk.size,
                    }
                )
    return volumes
