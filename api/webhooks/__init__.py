"""Webhooks out: events written with the change (``events``), endpoints and their URLs
(``endpoints``), signed delivery with retries (``sending``)."""
