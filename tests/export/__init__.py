"""Tests of dpcore.export."""
