"""Exploring the store: canned queries, Datasette (``reelset browse``) and an HTML report
(``reelset report``).

:mod:`.queries` holds the SQL both share; Datasette and matplotlib are optional extras
(``reelset[browse]``, ``reelset[plot]``), imported only inside the functions that use them.
"""
