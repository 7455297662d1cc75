"""The agent desktop: a web panel served by ctl under /desk/ (see ctl/desk/http.py)."""
