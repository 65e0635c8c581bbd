"""The models' errors: a model file or an enrolment that cannot be used.

They derive from :class:`sensors.errors.FacedepthError` like every error the project raises on
purpose, so the CLI and the GUI report them in one line; they live here because only ``models``
raises them (``sensors`` knows nothing of model files).

    FacedepthError            (sensors.errors)
    ├── ModelError            a model file is missing, corrupt or incompatible
    └── VerificationError     an enrolment does not belong to the verifier in use
"""
from __future__ import annotations

from sensors.errors import FacedepthError


class ModelError(FacedepthError):
    """A model file is missing, corrupt, or incompatible (input shape, metadata)."""


class VerificationError(FacedepthError):
    """An enrolment or pair list does not match the verifier or the data in use."""
