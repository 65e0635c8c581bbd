"""What every network's tools share: file writing and hashing (``files``)."""
