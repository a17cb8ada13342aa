"""Tests of dpcore.audit."""
