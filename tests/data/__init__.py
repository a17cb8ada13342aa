"""Tests of dpcore.data."""
