"""A simulated Proxmox VE cluster speaking the real JSON API over HTTPS on loopback."""
