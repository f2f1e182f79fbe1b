"""Orchestration: the kernel owner, micro-batching ticks into the core, fires into alerts."""
