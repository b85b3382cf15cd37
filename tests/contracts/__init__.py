"""Contract suites: the invariants every implementation of an interface must keep."""
