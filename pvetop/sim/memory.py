"""Memory as a host sees it: what each VM costs its node, and PVE's auto-ballooning.

A guest reports the memory its OS uses (the balloon driver's ``total_mem - free_mem``: ``mem`` in
/cluster/resources). The host pays more: every page the guest has touched, page cache included,
stays resident in the QEMU process (``memhost``, from the VM's cgroup, qemu-server QemuServer.pm
vmstatus), plus QEMU's own overhead. The node's ``mem`` is MemTotal - MemAvailable
(pve-common ProcFSTools.pm read_meminfo): its kernel and services, caches it cannot drop (ZFS
ARC, Ceph OSDs), each VM's ``memhost`` and each container's memory.

pvestatd's auto_ballooning (pve-manager AutoBalloon.pm compute_alg1) keeps a node at its
``ballooning-target`` (80 % by default): above it, VMs whose ``balloon`` is below ``memory`` are
deflated toward their ``balloon`` minimum, sharing the reclaim evenly (equal shares). pvestatd
moves 100 MiB per VM every 10 s; the simulator shows where that converges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pvetop.sim.entities import SimGuest, SimNode

QEMU_OVERHEAD = 0.02  # QEMU's own allocations (device state, page tables), a share of the VM's RAM
BALLOONING_TARGET = 80  # percent of the node's memory (node config 'ballooning-target')


@dataclass(frozen=True, slots=True)
class GuestMemory:
    """One running guest's memory at one instant (bytes)."""

    mem: int  # what the guest reports (VMs: balloon statistics; containers: their cgroup)
    memhost: int  # what its node pays for it (VMs: the QEMU process's resident memory)
    balloon: int  # the balloon's current size (== memory when it is not deflated)


def host_resident(guest: SimGuest, used: int, actual: int) -> int:
    """A VM's ``memhost``: the pages it uses plus the share of the rest it has touched (page
    cache), within the balloon's current size, plus QEMU's overhead."""
    touched = used + int(max(0, actual - used) * guest.cache_share)
    return min(actual, touched) + int(actual * QEMU_OVERHEAD)


def node_memory(
    node: SimNode, guests: Iterable[SimGuest], used: dict[int, int], target_percent: int = BALLOONING_TARGET
) -> tuple[int, dict[int, GuestMemory]]:
    """(the node's used memory, each running guest's memory) once auto-ballooning has settled.

    ``used`` holds what each running guest's OS uses at that instant (before any ballooning).
    """
    figures: dict[int, GuestMemory] = {}
    ballooned: list[SimGuest] = []
    total = node.base_memory
    for guest in guests:
        if guest.status != "running":
            continue
        mem = used[guest.vmid]
        if guest.type == "lxc":
            figures[guest.vmid] = GuestMemory(mem, mem, guest.memory)
            total += mem
            continue
        memhost = host_resident(guest, mem, guest.memory)
        figures[guest.vmid] = GuestMemory(mem, memhost, guest.memory)
        total += memhost
        if guest.balloon and guest.balloon < guest.memory and guest.lock != "migrate":
            ballooned.append(guest)
    excess = total - node.memory * target_percent // 100
    if excess > 0 and ballooned:
        total -= _deflate(ballooned, used, figures, excess)
    return min(total, node.memory), figures


def _deflate(guests: list[SimGuest], used: dict[int, int], figures: dict[int, GuestMemory], excess: int) -> int:
    """Takes up to ``excess`` bytes of host memory back from the ballooned VMs, evenly, none below
    what it holds at its ``balloon`` minimum (compute_alg1 with equal shares); returns the bytes
    the node got back."""

    def resident(guest: SimGuest, actual: int) -> int:
        return host_resident(guest, min(used[guest.vmid], actual), actual)

    room = {g.vmid: max(0, figures[g.vmid].memhost - resident(g, g.balloon)) for g in guests}
    take = dict.fromkeys(room, 0)
    left = excess
    active = [vmid for vmid, free in room.items() if free > 0]
    while left > 0 and active:
        share = max(1, left // len(active))
        for vmid in list(active):
            step = min(share, room[vmid] - take[vmid], left)
            take[vmid] += step
            left -= step
            if take[vmid] >= room[vmid]:
                active.remove(vmid)
            if left <= 0:
                break
    freed = 0
    for guest in guests:
        if not take[guest.vmid]:
            continue
        before = figures[guest.vmid].memhost
        wanted = before - take[guest.vmid]
        low, high = guest.balloon, guest.memory  # the balloon size whose resident memory is ``wanted``
        while high - low > 1024 * 1024:
            middle = (low + high) // 2
            low, high = (middle, high) if resident(guest, middle) < wanted else (low, middle)
        figures[guest.vmid] = GuestMemory(min(used[guest.vmid], high), resident(guest, high), high)
        freed += before - figures[guest.vmid].memhost
    return freed
