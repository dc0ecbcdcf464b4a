"""What every surface that reads a user's file or writes a user's output must respect.

One place for each rule, so that a new command inherits it instead of re-implementing it:

* ``paths``: every path a data file names is resolved here and must stay under the root the user
  gave (a transcripts CSV, an extraction record or a request cannot choose which files are read).
* ``outputs``: the output guard used by every command that writes (a lock on the output, no
  silent replace without ``overwrite``, never over one of the command's inputs, atomic
  replacement, file modes from the umask).
* ``cells``: text cells written back to CSV files are escaped the way spreadsheet programs
  expect, so a cell cannot become a formula.

Each reader declares its bounds beside its code (``PickleLimits`` for pickles, and so on);
``docs/security.md`` lists them with their defaults.
"""
