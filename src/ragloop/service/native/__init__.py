"""The native HTTP API: query, documents, health, and every ``/admin`` route (admin.py)."""
