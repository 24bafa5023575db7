"""Fan-out port between the nodes that accept sends and the gateways that hold devices."""
