"""Tests of dpcore.runs."""
