"""A simulated Proxmox VE cluster speaking the real JSON API over HTTPS on loopback.

``runner.start_sim`` serves one (HTTPS API + UDP wake-on-LAN listener) from a background
thread; ``cluster.SimCluster`` is the deterministic state machine behind it; ``scenarios`` holds
the clusters it can play. Modules: ``load`` (seeded load curves), ``entities`` (nodes, guests,
storage), ``tasks`` (UPIDs and logs), ``migration`` (migration plans), ``views`` (PVE's JSON
shapes), ``auth`` (tokens, tickets, privileges), ``server`` (routes, faults, control API).
"""
