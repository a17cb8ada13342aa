"""Tests of dpcore.dpsgd."""
