"""Tests of dpcore.room."""
