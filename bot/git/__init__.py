"""Everything that touches git: running it, reading and writing objects, building branches.

Builds must not depend on the machine: libgit2 (through pygit2) would otherwise read the
user's and the system's git config and attributes (`merge.default`, `*.c -merge`, ...) and
merge differently. Importing this package points those search paths at nothing; the git
program gets the same isolation from `runner.clean_env`.
"""

from typing import TypeAlias

import pygit2
from pygit2.enums import ConfigLevel

# What callers above bot/git hold and pass back in, without importing pygit2 themselves.
Repository: TypeAlias = pygit2.Repository

for _level in (ConfigLevel.SYSTEM, ConfigLevel.XDG, ConfigLevel.GLOBAL, ConfigLevel.PROGRAMDATA):
    pygit2.settings.search_path[_level] = ""
