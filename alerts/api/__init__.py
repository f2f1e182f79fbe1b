"""The gRPC API: servicers, interceptors and conversions between protos and domain types."""
