"""Reading a dataset back for people: checks, reports, preview sheets."""
