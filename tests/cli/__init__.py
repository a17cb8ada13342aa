"""Tests of dpcore.cli."""
