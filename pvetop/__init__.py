"""pvetop: an htop-style dashboard, migrator and balancer for Proxmox VE clusters."""

__version__ = "0.1.0"
