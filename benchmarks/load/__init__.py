"""Load harness for the gRPC service (see README.md)."""
