"""Who is calling: signed tokens that name an owner (JWT today; users and API keys later)."""
