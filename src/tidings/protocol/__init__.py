"""Sans-I/O device protocol: frames and the per-connection session state machine."""
