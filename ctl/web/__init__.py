"""HTTP surface: thin handlers over the services."""
