"""The bundled digits-on-photos benchmark."""
