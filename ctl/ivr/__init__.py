"""IVR flows. Until the YAML runner lands, `builtin` holds the demo flow."""
