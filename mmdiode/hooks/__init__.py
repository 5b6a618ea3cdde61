"""mmdiode.hooks (components register on import)."""
from .deep_inversion_hook import DeepInversionHook

__all__ = ['DeepInversionHook']
