"""The admin page at ``/queue``: one module per part of the page."""
