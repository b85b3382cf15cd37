"""Fake backend services on 127.0.0.1 that implement just what our modules use, and record it."""
