"""systemd units for containers and pods.

- `units`: `generate systemd` — service units for an existing container or pod (and the pod's
  members), written as podman 4.3 writes them (`--new`, `--name`, prefixes, restart policy...).
- `quadlet`: Quadlet-style `.container`, `.volume`, `.network`, `.pod` and `.kube` files turned
  into service units, as a systemd generator does.
"""
