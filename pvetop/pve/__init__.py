"""The only code that talks to a Proxmox VE API (through proxmoxer)."""
