"""Tests of dpcore.privacy."""
