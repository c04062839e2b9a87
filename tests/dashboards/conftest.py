"""Prints the tier's notes (expressions marked known-missing and why, results that were only NaN)
at the end of every run, whatever pytest's capture and -r options: nothing is skipped silently."""


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    notes = getattr(config, "_kuberelay_dashboard_notes", None)
    if notes:
        terminalreporter.section("dashboards and alerts: notes")
        for line in notes:
            terminalreporter.write_line(line)
