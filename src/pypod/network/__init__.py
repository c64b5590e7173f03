"""Networks: bridges, IPAM, published ports, name resolution, rootless networking."""
