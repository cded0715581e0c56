"""Which guests keep volumes on a storage: ``GET /nodes/{node}/storage/{storage}/content``.

One request, made when the user asks (the storage view's enter), never per refresh. A shared
storage answers for the whole cluster from any node; a local one for the node asked.
"""

from __future__ import annotations

from pvetop.pve.client import PveClient


def storage_guests(client: PveClient, node: str, storage: str) -> dict[int, int]:
    """vmid -> bytes of that guest's volumes on the storage (VM disks and container volumes)."""
    volumes = client.get(f"nodes/{node}/storage/{storage}/content", content="images,rootdir")
    sizes: dict[int, int] = {}
    for volume in volumes if isinstance(volumes, list) else []:
        if isinstance(volume, dict) and isinstance(volume.get("vmid"), int | str) and str(volume["vmid"]).isdigit():
            vmid = int(volume["vmid"])
            sizes[vmid] = sizes.get(vmid, 0) + int(volume.get("size") or 0)
    return sizes
