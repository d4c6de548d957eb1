"""Errors raised by the image package, each carrying a message a user can act on.

Owns the exception hierarchy only; it must not format tracebacks or know about the CLI. Every
error's ``str()`` names the thing that is wrong (reference, digest, registry, layer entry) and,
where there is one, the fix.
"""

from __future__ import annotations


class ImageError(Exception):
    """Base class: any failure of the image package that is reported to a user."""


class InvalidReferenceError(ImageError, ValueError):
    """An image reference such as ``reg:5000/acme/app:1.0`` could not be parsed."""


class ImageNotFoundError(ImageError, LookupError):
    """A local image, a blob or a remote manifest does not exist."""


class DigestMismatchError(ImageError):
    """Content did not hash to the digest (or size) it was announced with."""


class RegistryError(ImageError):
    """The registry answered with an error, or could not be reached."""


class AuthError(RegistryError):
    """The registry refused access: no credentials, or wrong ones."""


class ManifestError(ImageError):
    """A manifest or index is malformed, or its media type disagrees with its content."""


class UnsafeLayerError(ImageError):
    """A layer tries to write outside its root or otherwise break the unpack rules."""


class LayerLimitError(UnsafeLayerError):
    """A layer exceeds the size or entry-count limits (decompression bomb protection)."""


class ArchiveError(ImageError):
    """An image archive (OCI layout or ``docker save`` tarball) is malformed."""


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached or a transfer was cut off; retrying may help."""


class BlobBusyError(ImageError):
    """Another writer (another pull, maybe in another process) holds this blob's partial file."""
