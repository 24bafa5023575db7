"""HTTP surfaces: the Mi Push-compatible sender API."""
