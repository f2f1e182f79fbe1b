"""Delivery channels: one module per destination kind, all shaped by ``base.ChannelSender``."""
