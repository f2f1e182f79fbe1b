"""Delivery channels: one module per destination kind, all shaped by ``base.ChannelSender``.

``factory.build_sender(kind, config, settings)`` makes a sender; ``config.py`` holds
the per-kind configuration and the service-wide ``DeliverySettings``;
``url_guard.validate_webhook_url`` is the SSRF check the API runs on create;
``signing.generate_webhook_secret`` makes ``whsec_`` secrets. Senders:
``webhook``, ``discord``, ``telegram``, ``sms`` (Twilio-compatible), ``email`` (SMTP).
"""
