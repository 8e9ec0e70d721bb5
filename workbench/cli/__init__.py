"""The `workbench` command line: the same verbs as the Python API."""
