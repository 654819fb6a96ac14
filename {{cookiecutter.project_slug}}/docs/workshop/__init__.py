"""The workshop (see README.md here): exercises, their solutions, and the checks."""
