"""Virtuous CRM+ only: its client, endpoints, errors and their classes, webhooks, and JSON keys."""
