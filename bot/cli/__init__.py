"""The `xsabot` command line: argument parsing and exit codes (`main`), text, table and JSON
output (`render`), and terminal progress (`progress`). It calls the use cases in `bot/app`."""
