"""The historical gift import (spec 4.4, seed Pattern 5): validate a file, then feed the shared queue.

The file is read twice, row by row, never held in memory: ``validate`` produces the report a
customer reviews (structural checks, then contact resolution through ``Contact/Find`` within the
tenant's bulk budget); ``enqueue`` opens or resumes a run and puts gifts into the same outbound
queue as live donations with origin ``bulk`` (lower priority) in chunks; ``signoff`` compares what
was imported with what Virtuous holds. ``files`` reads the input (a CSV/XLSX file, or a
connection's source API spooled into one). Each pass commits its position with its counters, so an
interrupted run resumes at the next row, and the queue's idempotency keys make a re-run enqueue
nothing twice.
"""
