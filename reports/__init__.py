"""Reports, paper tables, leaderboards and the regression gate built from matbench result records.

render (HTML site), tables (md/latex/csv), leaderboard (merge + protocol check), check (CI gate),
plots (matplotlib PNG+SVG), sample (a small sample run for tests and docs). See docs/reports.md.
"""
