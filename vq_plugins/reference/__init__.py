"""The reference video services: the three contracts served over loopback, with fault injection."""
