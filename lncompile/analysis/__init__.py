"""Analyses of the IR that need no compiler: parameter and multiply-add counts."""
