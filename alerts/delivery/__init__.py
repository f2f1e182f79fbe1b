"""Fan-out of committed alerts: the in-process hub behind gRPC streams (channels later)."""
