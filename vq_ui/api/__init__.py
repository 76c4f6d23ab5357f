"""The REST API under ``/api/v1``: jobs, accounts and one error shape."""
