"""mmdiode.hooks (components register on import)."""
