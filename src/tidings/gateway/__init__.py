"""Device gateway: WebSocket connections pumped through the sans-I/O protocol into the hub."""
