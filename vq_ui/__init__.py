"""vq_ui: the admin page, the login and the REST API, contributed to vq as a plugin."""
