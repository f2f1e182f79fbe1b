"""Tests of the clients in clients/ against a real server over loopback."""
