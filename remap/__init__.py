"""Legacy CPQ ids: Salesforce id handling, the crosswalk's rules, translation both ways.

Pure: the store behind the crosswalk is :mod:`daemon.cycle.crosswalk`.
"""
