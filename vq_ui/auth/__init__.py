"""Who is asking and what they may do: roles, users and tokens, sessions and the login flow."""
