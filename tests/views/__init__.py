"""Tests of dpcore.views."""
