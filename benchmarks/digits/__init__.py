"""The bundled digits-on-photos benchmark: the data set builder
(:mod:`.dataset`) and the data-free benchmark's rows (:mod:`.datafree`)."""
