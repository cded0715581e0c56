"""Pins, locks, reservations, settings and the action journal, kept with peewee."""
